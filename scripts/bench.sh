#!/usr/bin/env bash
# Benchmarks of the spend path (issue 7): scripts/bench.sh [--quick] [bench.run options]
#   Installs the bench-only extras (requirements-bench.txt) into .venv, then runs
#   bench/run.py against PostgreSQL: DATABASE_URL's server when set, else
#   postgres@127.0.0.1:5432. It works in scratch databases (dw_bench_*), dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements-bench.txt
if ! command -v pgbench >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1; then
  echo "pgbench is needed for the ceiling: install postgresql-contrib / postgresql-client." >&2
  exit 2
fi
exec .venv/bin/python -m bench.run "$@"
