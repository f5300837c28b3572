#!/usr/bin/env bash
# `make failover-drill`: a fresh cluster (deploy/cluster.sh), the drill
# (deploy/failover_drill.py), then the cluster is removed again (KEEP_CLUSTER=1 keeps it).
# Exit status: the drill's (non-zero on any finding).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .cluster ]; then
  echo "A cluster is running (.cluster/): the drill destroys its primary, so it starts its own. Run make cluster-stop first." >&2
  exit 2
fi
[ "${KEEP_CLUSTER:-0}" = 1 ] || trap 'deploy/cluster.sh stop' EXIT
deploy/cluster.sh start
# shellcheck source=/dev/null
. .cluster/env
.venv/bin/python deploy/failover_drill.py "$@"
