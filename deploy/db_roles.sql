-- The database and its two roles (docs/operations/production.md, "Database roles"):
--   :migrator  owns the schema and every table; `manage.py migrate` connects as it
--              (MIGRATE_DATABASE_URL);
--   :app       the service (gunicorn, workers, cron commands; DATABASE_URL): reads and
--              writes rows, owns nothing, so it can neither ALTER/DROP a table, nor
--              disable the append-only triggers, nor TRUNCATE (no privilege; the
--              triggers' escape hatch also needs ownership).
-- Default privileges give :app the same rights on every table and sequence a later
-- migration creates (they are created by :migrator). Idempotent: run it again after
-- adding roles' passwords, or on an existing database, and nothing breaks.
--
-- Run as a PostgreSQL superuser (or a role with CREATEROLE and CREATEDB):
--   psql -v ON_ERROR_STOP=1 -v db=divine_whispers -v migrator=dw_migrate -v app=dw_app \
--        -f deploy/db_roles.sql "postgres://postgres@db.internal:5432/postgres"
-- then give each role a password: psql -c '\password dw_migrate' (and dw_app).
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN', :'migrator')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'migrator') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'app')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'migrator')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec

\connect :"db"
-- Only the two roles may connect; only the owner may create objects.
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"migrator";
GRANT CONNECT ON DATABASE :"db" TO :"app";
ALTER SCHEMA public OWNER TO :"migrator";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";

-- Tables that exist now (an existing installation) ...
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app";
-- ... and every table and sequence the migrator creates from now on.
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app";
