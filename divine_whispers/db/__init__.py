"""The database layer every app shares: transactions and retries, compiled queries,
read routing to a standby, the PgBouncer-safe engine, and the test-only fault hooks."""
