#!/usr/bin/env bash
# A whole production-shaped cluster on this machine, on loopback ports (docs/operations/
# cluster.md):
#
#   clients → HAProxy (health checks on /healthz) → 2 gunicorn app servers
#           → PgBouncer (transaction pooling) → PostgreSQL primary ⇄ synchronous standby
#   2 job workers (manage.py run_jobs), a Redis for the shared cache.
#
# Usage: deploy/cluster.sh start|stop|status|env, and for drills and operators:
#        app-kill N | app-start N | primary-kill | promote (standby → primary, PgBouncer
#        repointed)
#   CLUSTER_PORT_BASE (default 25400): HAProxy listens on BASE, its stats on BASE+1, the
#   app servers on BASE+11/12, PgBouncer on BASE+20, PostgreSQL on BASE+31 (primary) and
#   BASE+32 (standby), Redis on BASE+40. Everything lives under .cluster/ (gitignored);
#   `stop` kills what `start` started (by the pids it recorded) and removes the folder.
# The app runs exactly as docs/operations/production.md says (gunicorn -c
# gunicorn.conf.py, DEBUG off), with random secrets generated here and kept in
# .cluster/env for the drill and the operator commands (`deploy/cluster.sh env`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
STATE="$ROOT/.cluster"
BASE="${CLUSTER_PORT_BASE:-25400}"
HAPROXY_PORT=$BASE
STATS_PORT=$((BASE + 1))
APP_PORTS=($((BASE + 11)) $((BASE + 12)))
PGBOUNCER_PORT=$((BASE + 20))
PRIMARY_PORT=$((BASE + 31))
STANDBY_PORT=$((BASE + 32))
REDIS_PORT=$((BASE + 40))
DB=divine_whispers
WORKERS=2

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_packages() {
  local missing=()
  command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
  [ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null || missing+=(pgbouncer)
  [ -n "$(pg_bin)" ] || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  [ ${#missing[@]} = 0 ] && return 0
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null ||
    die "missing: ${missing[*]} (install them: apt-get install ${missing[*]})"
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq >/dev/null
  # The packages' own services are not wanted: everything here runs on its own ports.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${missing[@]}" >/dev/null
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$what did not come up within ${seconds}s (logs: $STATE/log)"
}

random_secret() { head -c 48 /dev/urandom | base64 | tr -d '/+=\n'; }

write_env() {
  cat >"$STATE/env" <<EOF
# Written by deploy/cluster.sh: the production environment of this cluster's app servers.
export DEBUG=0
export SECRET_KEY='$(random_secret)'
export AUDIT_HMAC_KEY='$(random_secret)'
export ALLOWED_HOSTS=127.0.0.1,localhost
export DATABASE_URL=postgres://postgres@127.0.0.1:$PGBOUNCER_PORT/$DB
export DATABASE_REPLICA_URL=postgres://postgres@127.0.0.1:$PGBOUNCER_PORT/${DB}_replica
export DATABASE_TRANSACTION_POOLING=1
export CACHE_URL=redis://127.0.0.1:$REDIS_PORT/0
export CLUSTER_URL=http://127.0.0.1:$HAPROXY_PORT
export CLUSTER_STATS_URL=http://127.0.0.1:$STATS_PORT/stats
export CLUSTER_STATE=$STATE
export CLUSTER_APP_PORTS=${APP_PORTS[0]},${APP_PORTS[1]}
export CLUSTER_PGBOUNCER_PORT=$PGBOUNCER_PORT
export CLUSTER_PRIMARY_PORT=$PRIMARY_PORT
export CLUSTER_STANDBY_PORT=$STANDBY_PORT
export CLUSTER_PRIMARY_URL=postgres://postgres@127.0.0.1:$PRIMARY_PORT/$DB
export CLUSTER_STANDBY_URL=postgres://postgres@127.0.0.1:$STANDBY_PORT/$DB
EOF
}

# --- PostgreSQL: a primary and a synchronous streaming standby ------------------------

start_primary() {
  local bin data="$STATE/pg/primary"
  bin="$(pg_bin)"
  as_postgres "$bin/initdb" -D "$data" -U postgres -A trust >/dev/null
  cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PRIMARY_PORT
unix_socket_directories = '$STATE/run'
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
hot_standby = on
hot_standby_feedback = on
max_connections = 100
EOF
  as_postgres "$bin/pg_ctl" -D "$data" -l "$STATE/log/primary.log" -w start >/dev/null
  "$bin/createdb" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres "$DB"
}

start_standby() {
  local bin data="$STATE/pg/standby"
  bin="$(pg_bin)"
  # -R: standby.signal and primary_conninfo; a slot keeps the WAL the standby still needs.
  as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$data" \
    -R -X stream -C -S standby1 >/dev/null
  cat >>"$data/postgresql.conf" <<EOF
port = $STANDBY_PORT
cluster_name = 'standby1'
EOF
  as_postgres "$bin/pg_ctl" -D "$data" -l "$STATE/log/standby.log" -w start >/dev/null
  # The walreceiver's application_name is the cluster_name: make it synchronous. From now
  # on a commit on the primary returns only once the standby has flushed its WAL.
  primary_sql "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (standby1)'"
  primary_sql "SELECT pg_reload_conf()" >/dev/null
  wait_for 30 "the synchronous standby" standby_is_sync
}

primary_sql() { "$(pg_bin)/psql" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -d postgres -qAtc "$1"; }

standby_is_sync() {
  [ "$(primary_sql "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'")" = sync ]
}

# --- PgBouncer, Redis, app servers, workers, HAProxy ------------------------------------

# Server-session defaults for what the app sends outside a transaction: PgBouncer forwards
# no `options` startup parameter, and the app's transactions set their own bounds with
# SET LOCAL (docs/operations/cluster.md, "Bounded waits behind PgBouncer").
ms() { awk -v seconds="$1" 'BEGIN { printf "%d", seconds * 1000 }'; }
BOUNDS_QUERY="SET statement_timeout = $(ms "${DATABASE_STATEMENT_TIMEOUT_SECONDS:-5}"); SET lock_timeout = $(ms "${DATABASE_LOCK_TIMEOUT_SECONDS:-3}"); SET idle_in_transaction_session_timeout = $(ms "${DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS:-5}")"

write_pgbouncer_ini() { # write_pgbouncer_ini PRIMARY_PORT REPLICA_PORT
  cat >"$STATE/pgbouncer.ini" <<EOF
[databases]
$DB = host=127.0.0.1 port=$1 dbname=$DB connect_query='$BOUNDS_QUERY'
${DB}_replica = host=127.0.0.1 port=$2 dbname=$DB connect_query='$BOUNDS_QUERY'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $STATE/userlist.txt
admin_users = postgres
pool_mode = transaction
max_client_conn = 400
default_pool_size = 20
server_reset_query =
server_connect_timeout = 3
# After a failed connect, retry after 1 s (default 15 s): a repointed pool recovers at once.
server_login_retry = 1
query_wait_timeout = 30
logfile = $STATE/log/pgbouncer.log
pidfile = $STATE/run/pgbouncer.pid
EOF
}

start_pgbouncer() {
  echo '"postgres" ""' >"$STATE/userlist.txt"
  write_pgbouncer_ini "$PRIMARY_PORT" "$STANDBY_PORT"
  chown -R postgres "$STATE/userlist.txt" "$STATE/pgbouncer.ini" 2>/dev/null || true
  as_postgres "$(pgbouncer_bin)" -d "$STATE/pgbouncer.ini"
  wait_for 10 "PgBouncer" pg_answers "$PGBOUNCER_PORT" "$DB"
}

pgbouncer_bin() { command -v pgbouncer || echo /usr/sbin/pgbouncer; }

pg_answers() { "$(pg_bin)/psql" -h 127.0.0.1 -p "$1" -U postgres -d "$2" -qAtc 'SELECT 1'; }

start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$STATE/run/redis.pid" --logfile "$STATE/log/redis.log" \
    --dir "$STATE"
  wait_for 10 "Redis" test -s "$STATE/run/redis.pid"
}

spawn() { # spawn NAME COMMAND...: in the background, own session, pid and log recorded
  local name=$1
  shift
  setsid "$@" >>"$STATE/log/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/run/$name.pid"
}

start_app() { # start_app N (1 or 2)
  # As docs/operations/production.md says; only the bind address is the cluster's.
  # Its own control socket too: gunicorn's default path is one per user, shared by every
  # gunicorn on the host.
  GUNICORN_BIND="127.0.0.1:${APP_PORTS[$1 - 1]}" \
    GUNICORN_CMD_ARGS="--control-socket $STATE/run/app$1.ctl" \
    spawn "app$1" .venv/bin/gunicorn -c gunicorn.conf.py
}

wait_for_app() { wait_for 60 "app server $1" curl -fsS "http://127.0.0.1:${APP_PORTS[$1 - 1]}/healthz"; }

start_app_servers() {
  start_app 1
  start_app 2
  wait_for_app 1
  wait_for_app 2
}

start_workers() {
  local i
  for i in $(seq "$WORKERS"); do
    spawn "worker$i" .venv/bin/python manage.py run_jobs
  done
}

start_haproxy() {
  cat >"$STATE/haproxy.cfg" <<EOF
global
    pidfile $STATE/run/haproxy.pid
    maxconn 1000

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # Only a request that never reached a server is retried (on another one): a POST that
    # did reach one is never sent twice by the balancer; clients retry with their key.
    retries 2
    option redispatch

frontend api
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend app

backend app
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
    # In-flight requests are left to finish when a server is marked down (a database
    # outage marks every server down: cutting their requests would only add errors).
    default-server check inter 1s fall 2 rise 2
    server app1 127.0.0.1:${APP_PORTS[0]}
    server app2 127.0.0.1:${APP_PORTS[1]}

listen stats
    bind 127.0.0.1:$STATS_PORT
    stats enable
    stats uri /stats
EOF
  haproxy -c -q -f "$STATE/haproxy.cfg"
  haproxy -D -f "$STATE/haproxy.cfg"
  wait_for 15 "HAProxy" curl -fsS "http://127.0.0.1:$HAPROXY_PORT/healthz"
}

# --- faults and failover (used by deploy/failover_drill.py; an operator's runbook too) ---

kill_app() { # SIGKILL app server N: its gunicorn master and every worker (one session)
  kill -KILL -- "-$(cat "$STATE/run/app$1.pid")"
}

kill_primary() { # SIGKILL the primary's postmaster and every backend: a crashed host
  local postmaster
  postmaster="$(head -1 "$STATE/pg/primary/postmaster.pid")"
  kill -KILL "$postmaster" $(ps -o pid= --ppid "$postmaster") 2>/dev/null || true
}

promote() { # the standby becomes the primary; PgBouncer is repointed to it
  local bin
  bin="$(pg_bin)"
  as_postgres "$bin/pg_ctl" -D "$STATE/pg/standby" -w -t 60 promote >/dev/null
  write_pgbouncer_ini "$STANDBY_PORT" "$STANDBY_PORT"
  # RELOAD: a database whose address changed gets new server connections.
  "$bin/psql" -h 127.0.0.1 -p "$PGBOUNCER_PORT" -U postgres -d pgbouncer -qc RELOAD >/dev/null
}

# --- commands ----------------------------------------------------------------------------

start() {
  [ -d "$STATE" ] && die "$STATE exists: a cluster is running or was left behind (make cluster-stop)"
  for port in "$HAPROXY_PORT" "$STATS_PORT" "${APP_PORTS[@]}" "$PGBOUNCER_PORT" \
    "$PRIMARY_PORT" "$STANDBY_PORT" "$REDIS_PORT"; do
    port_free "$port" || die "port $port is in use: choose another CLUSTER_PORT_BASE"
  done
  install_packages
  scripts/bootstrap.sh requirements.txt
  mkdir -p "$STATE"/{pg,run,log}
  [ "$(id -u)" = 0 ] && chown -R postgres "$STATE/pg" "$STATE/run" "$STATE/log"
  chmod 755 "$STATE"
  write_env
  # shellcheck source=/dev/null
  . "$STATE/env"
  log "PostgreSQL primary on $PRIMARY_PORT"
  start_primary
  log "migrating (directly on the primary, once per release)"
  DATABASE_URL="$CLUSTER_PRIMARY_URL" .venv/bin/python manage.py migrate --noinput >"$STATE/log/migrate.log"
  log "synchronous standby on $STANDBY_PORT (pg_basebackup -R)"
  start_standby
  log "PgBouncer (transaction pooling) on $PGBOUNCER_PORT, Redis on $REDIS_PORT"
  start_pgbouncer
  start_redis
  log "app servers on ${APP_PORTS[*]}, $WORKERS job workers"
  start_app_servers
  start_workers
  log "HAProxy on $HAPROXY_PORT (stats $CLUSTER_STATS_URL)"
  start_haproxy
  status
  log "up: $CLUSTER_URL — environment for manage.py: . .cluster/env; stop: make cluster-stop"
}

kill_recorded() { # kill the process group of each pid this script recorded
  local pidfile pid
  for pidfile in "$STATE"/run/*.pid; do
    [ -f "$pidfile" ] || continue
    pid="$(head -1 "$pidfile")"
    [ -n "$pid" ] || continue
    case "$(basename "$pidfile")" in
      app*.pid | worker*.pid) kill -TERM -- "-$pid" 2>/dev/null || true ;;
      *) kill -TERM "$pid" 2>/dev/null || true ;;
    esac
  done
  sleep 1
  for pidfile in "$STATE"/run/*.pid; do
    [ -f "$pidfile" ] || continue
    pid="$(head -1 "$pidfile")"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
}

stop() {
  [ -d "$STATE" ] || { log "no cluster (.cluster/ absent)"; return 0; }
  local bin
  bin="$(pg_bin)"
  kill_recorded
  for data in "$STATE"/pg/*/; do
    [ -f "$data/postmaster.pid" ] && as_postgres "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
  done
  rm -rf "$STATE"
  log "stopped and removed .cluster/"
}

status() {
  # shellcheck source=/dev/null
  . "$STATE/env"
  printf '%-12s %s\n' haproxy "$CLUSTER_URL/healthz → $(curl -s "$CLUSTER_URL/healthz")"
  for port in "${APP_PORTS[@]}"; do
    printf '%-12s %s\n' "app :$port" "$(curl -s "http://127.0.0.1:$port/healthz")"
  done
  printf '%-12s %s\n' pgbouncer "$(pg_answers "$PGBOUNCER_PORT" "$DB" >/dev/null 2>&1 && echo up || echo down)"
  printf '%-12s %s\n' replication "$(primary_sql "SELECT application_name || ' ' || state || ' ' || sync_state FROM pg_stat_replication" 2>/dev/null || echo 'primary down')"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) cat "$STATE/env" ;;
  app-start) start_app "$2" && wait_for_app "$2" ;;
  app-kill) kill_app "$2" ;;
  primary-kill) kill_primary ;;
  promote) promote ;;
  *) echo "usage: $0 start|stop|status|env|app-start N|app-kill N|primary-kill|promote" >&2; exit 2 ;;
esac
