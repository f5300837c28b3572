#!/usr/bin/env bash
# `make failover-drill`: a fresh cluster (deploy/cluster.sh), the drill
# (deploy/failover_drill.py), then the cluster is removed again (KEEP_CLUSTER=1 keeps it);
# its logs stay in artifacts/failover-drill/logs/.
# Exit status: the drill's (non-zero on any finding).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .cluster ]; then
  echo "A cluster is running (.cluster/): the drill destroys its primary, so it starts its own. Run make cluster-stop first." >&2
  exit 2
fi
# The cluster's logs (Patroni, PostgreSQL, etcd, app servers) are kept with the report.
keep_logs() { mkdir -p artifacts/failover-drill && rm -rf artifacts/failover-drill/logs && cp -r .cluster/log artifacts/failover-drill/logs 2>/dev/null || true; }
if [ "${KEEP_CLUSTER:-0}" = 1 ]; then trap keep_logs EXIT; else trap 'keep_logs; deploy/cluster.sh stop' EXIT; fi
deploy/cluster.sh start
# shellcheck source=/dev/null
. .cluster/env
.venv/bin/python deploy/failover_drill.py "$@"
