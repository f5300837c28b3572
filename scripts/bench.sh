#!/usr/bin/env bash
# Benchmarks (issues 7 and 14): scripts/bench.sh [--quick] [bench.run options]
#   Installs the bench-only extras (requirements-bench.txt) into .venv and, when run as
#   root on Debian/Ubuntu, the load generator wrk and PostgreSQL's pgbench; then runs
#   bench/run.py against PostgreSQL: DATABASE_URL's server when set, else
#   postgres@127.0.0.1:5432. It works in scratch databases (dw_bench_*), dropped at the end,
#   and keeps the HTTP bench's throttle counters in Redis database 13 (BENCH_CACHE_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements-bench.txt

have_pgbench() {
  command -v pgbench >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1
}
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
have_pgbench || missing+=(postgresql-contrib)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${missing[*]} (apt-get) ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "The benchmark needs: ${missing[*]} (Debian packages; run as root to install them)." >&2
    exit 2
  fi
fi
exec .venv/bin/python -m bench.run "$@"
