#!/usr/bin/env bash
# `make dr-drill`: point-in-time recovery drill on a throwaway PostgreSQL cluster (see
# scripts/dr_drill.py and docs/operations/backups.md). Needs PostgreSQL's server binaries (initdb,
# pg_ctl, pg_basebackup); installs Debian's postgresql package when run as root without them.
# Extra arguments go to the drill (e.g. --ops 1000, --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements.txt

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's postgresql for the drill's throwaway cluster ..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "The drill needs PostgreSQL's server binaries: apt-get install postgresql" >&2
    exit 2
  fi
fi
exec .venv/bin/python scripts/dr_drill.py "$@"
