"""PostgreSQL with every wait bounded (connect, lock, statement, idle transaction); see base.py."""
