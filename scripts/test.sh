#!/usr/bin/env bash
# Quick start 2: the whole test suite on PostgreSQL.
#   DATABASE_URL when set; else the local server on 127.0.0.1:5432 (user postgres);
#   else a throwaway cluster in a temporary folder when initdb/pg_ctl are installed;
#   else a one-line message naming what to install, and exit 2.
# Extra arguments go to pytest (e.g. scripts/test.sh -m stress).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements-dev.txt

pg_answers() {
  .venv/bin/python - "$1" <<'PY' >/dev/null 2>&1
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PY
}

find_pg_bin() {
  command -v "$1" 2>/dev/null && return 0
  ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -1 | grep . && return 0
  return 1
}

start_throwaway_cluster() {
  local initdb pg_ctl dir port runas=()
  initdb="$(find_pg_bin initdb)" && pg_ctl="$(find_pg_bin pg_ctl)" || return 1
  dir="$(mktemp -d -t dw-pg-XXXXXX)"
  port=$((20000 + RANDOM % 20000))
  if [ "$(id -u)" = 0 ]; then # initdb refuses to run as root
    chown postgres "$dir" 2>/dev/null && runas=(runuser -u postgres --) || runas=(runuser -u nobody --)
    chown "${runas[2]}" "$dir"
  fi
  echo "No PostgreSQL answered: starting a throwaway cluster in $dir on port $port" >&2
  "${runas[@]}" "$initdb" -D "$dir/data" -U postgres -A trust >/dev/null
  "${runas[@]}" "$pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
  # Expanded now: the function's locals are gone when the EXIT trap runs.
  trap "$(printf '%q ' "${runas[@]}" "$pg_ctl") -D $(printf '%q' "$dir/data") -m immediate stop >/dev/null 2>&1; rm -rf $(printf '%q' "$dir")" EXIT
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/divine_whispers"
}

if [ -z "${DATABASE_URL:-}" ]; then
  if pg_answers "postgresql://postgres@127.0.0.1:5432/postgres"; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/divine_whispers"
  elif ! start_throwaway_cluster; then
    echo "PostgreSQL is required for the tests: set DATABASE_URL, start a server on 127.0.0.1:5432, or install PostgreSQL (apt-get install postgresql)." >&2
    exit 2
  fi
fi

# Tests that need a Debian program: the admin's end-to-end test drives Debian's Chromium
# (never a downloaded browser); the transaction-pooling tests run through Debian's
# PgBouncer (wallet/tests/reliability/test_pgbouncer.py). Installed when missing and run as root.
ensure_debian_package() { # ensure_debian_package PROGRAM PACKAGE WHAT-NEEDS-IT
  [ -x "$1" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's $2 for $3 ..." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; } >/dev/null ||
      echo "Could not install $2: $3 will be skipped." >&2
  else
    echo "No $1 (install it: apt-get install $2): $3 will be skipped." >&2
  fi
}
ensure_debian_package /usr/bin/chromium chromium "the e2e test"
ensure_debian_package /usr/sbin/pgbouncer pgbouncer "the PgBouncer tests"

# The alert rules' unit tests run Debian's promtool. Only the promtool binary is taken from
# the `prometheus` package (into .venv/bin): installing the package would also install and
# start a Prometheus server on the developer's machine.
ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  [ -x .venv/bin/promtool ] && return 0
  command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 || {
    echo "No promtool (Debian's prometheus package has it): the alert rule test will be skipped." >&2
    return 0
  }
  local dir
  dir="$(mktemp -d -t dw-promtool-XXXXXX)"
  echo "Fetching promtool from Debian's prometheus package for the alert rule tests ..." >&2
  if ! (cd "$dir" && apt-get download -qq prometheus >/dev/null 2>&1); then
    [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1
    (cd "$dir" && apt-get download -qq prometheus >/dev/null 2>&1) || true
  fi
  if ls "$dir"/prometheus_*.deb >/dev/null 2>&1 && dpkg-deb -x "$dir"/prometheus_*.deb "$dir/x" &&
    [ -x "$dir/x/usr/bin/promtool" ]; then
    cp "$dir/x/usr/bin/promtool" .venv/bin/promtool
  else
    echo "Could not fetch promtool: the alert rule test will be skipped." >&2
  fi
  rm -rf "$dir"
}
ensure_promtool

echo "Testing on ${DATABASE_URL%%\?*}"
.venv/bin/python -m pytest "$@"
