"""PostgreSQL behind a transaction-mode pooler (DATABASE_TRANSACTION_POOLING); see base.py."""
