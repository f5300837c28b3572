#!/usr/bin/env bash
# A whole production-shaped cluster on this machine, on loopback ports (docs/operations/
# cluster.md):
#
#   clients → HAProxy :BASE (health checks on /healthz) → 2 gunicorn app servers
#           → PgBouncer (transaction pooling) → HAProxy :BASE+33 (writes: Patroni's
#             /primary check) and :BASE+34 (reads: /replica) → PostgreSQL pg1 ⇄ pg2,
#             each run by its Patroni, leader elected in a 3-member etcd
#   2 job workers (manage.py run_jobs), a Redis for the shared cache.
#
# Usage: deploy/cluster.sh start|stop|status|env, and for drills and operators:
#        leader | replica            (name of the member holding that role, or nothing)
#        member-kill NAME | member-stop NAME | member-cont NAME | member-start NAME
#                                    (SIGKILL / SIGSTOP / SIGCONT a member's Patroni and
#                                    PostgreSQL: a crashed or frozen host; start its
#                                    Patroni again: it rejoins by itself, pg_rewind)
#        etcd-kill N | etcd-start N  (N = 1..3)
#        app-kill N | app-start N
#        patronictl ARGS...          (e.g. patronictl switchover --candidate pg1 --force)
#   CLUSTER_PORT_BASE (default 25400): HAProxy listens on BASE, its stats on BASE+1, the
#   app servers on BASE+11/12, PgBouncer on BASE+20, PostgreSQL on BASE+31/32 (pg1/pg2),
#   HAProxy's database frontends on BASE+33 (leader) and BASE+34 (replica), Redis on
#   BASE+40, Patroni's REST API on BASE+51/52, etcd clients on BASE+61..63 and peers on
#   BASE+71..73. Everything lives under .cluster/ (gitignored); `stop` kills what
#   `start` started (by the pids it recorded) and removes the folder.
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
PG_PORTS=($((BASE + 31)) $((BASE + 32)))
WRITE_PORT=$((BASE + 33))
READ_PORT=$((BASE + 34))
REDIS_PORT=$((BASE + 40))
REST_PORTS=($((BASE + 51)) $((BASE + 52)))
ETCD_PORTS=($((BASE + 61)) $((BASE + 62)) $((BASE + 63)))
ETCD_PEER_PORTS=($((BASE + 71)) $((BASE + 72)) $((BASE + 73)))
MEMBERS=(pg1 pg2)
SCOPE=divine-whispers
DB=divine_whispers
WORKERS=2
# Patroni's timing (docs/operations/cluster.md, "Failure detection"): the leader renews
# its key every LOOP_WAIT s; a key not renewed for TTL s expires and the synchronous
# standby takes over. loop_wait + 2 × retry_timeout ≤ ttl.
PATRONI_TTL="${PATRONI_TTL:-10}"
PATRONI_LOOP_WAIT="${PATRONI_LOOP_WAIT:-2}"
PATRONI_RETRY_TIMEOUT="${PATRONI_RETRY_TIMEOUT:-4}"
# Patroni talks to etcd through its v2 API by default. Debian's Patroni 3.0.2 has a bug in
# its etcd3 (v3 API) client: a leader whose lease expired (frozen, SIGSTOP) writes the
# leader key again unconditionally when it wakes up, taking it back from the member that
# was elected meanwhile (patroni/patroni#2689, fixed in 3.0.3); the failover drill caught
# it. Its v2 client renews the key with a compare-and-swap on its own name, which fails
# once another member holds it. PATRONI_DCS=etcd3 selects the v3 client (to reproduce).
PATRONI_DCS="${PATRONI_DCS:-etcd}"

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
  command -v patroni >/dev/null || missing+=(patroni)
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v etcdctl >/dev/null || missing+=(etcd-client)
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

etcd_endpoints() { echo "127.0.0.1:${ETCD_PORTS[0]},127.0.0.1:${ETCD_PORTS[1]},127.0.0.1:${ETCD_PORTS[2]}"; }

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
# Whoever is the leader / a replica now (HAProxy's database frontends, Patroni's checks):
export CLUSTER_PRIMARY_URL=postgres://postgres@127.0.0.1:$WRITE_PORT/$DB
export CLUSTER_STANDBY_URL=postgres://postgres@127.0.0.1:$READ_PORT/$DB
# Each member directly (name=port, Patroni REST port):
export CLUSTER_MEMBERS=pg1:${PG_PORTS[0]}:${REST_PORTS[0]},pg2:${PG_PORTS[1]}:${REST_PORTS[1]}
export CLUSTER_ETCD_ENDPOINTS=$(etcd_endpoints)
export CLUSTER_PATRONI_TTL=$PATRONI_TTL
export CLUSTER_PATRONI_DCS=$PATRONI_DCS
EOF
}

# --- etcd: 3 members, the quorum Patroni's leader key lives in --------------------------

start_etcd() { # start_etcd N (1..3); `etcd-start N` after a kill reuses the data dir
  local n=$1 cluster="" i
  for i in 1 2 3; do
    cluster+="${cluster:+,}etcd$i=http://127.0.0.1:${ETCD_PEER_PORTS[$i - 1]}"
  done
  local state=new
  [ -d "$STATE/etcd/etcd$n" ] && state=existing
  spawn "etcd$n" etcd --name "etcd$n" --data-dir "$STATE/etcd/etcd$n" \
    --listen-client-urls "http://127.0.0.1:${ETCD_PORTS[$n - 1]}" \
    --advertise-client-urls "http://127.0.0.1:${ETCD_PORTS[$n - 1]}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORTS[$n - 1]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORTS[$n - 1]}" \
    --initial-cluster "$cluster" --initial-cluster-token "dw-$BASE" \
    --initial-cluster-state "$state" --heartbeat-interval 100 --election-timeout 1000 \
    --logger zap --log-level warn --enable-v2=true
}

etcd_healthy() { ETCDCTL_API=3 etcdctl --endpoints "$(etcd_endpoints)" endpoint health --cluster; }

start_etcd_cluster() {
  mkdir -p "$STATE/etcd"
  start_etcd 1
  start_etcd 2
  start_etcd 3
  wait_for 30 "etcd (3 members)" etcd_healthy
}

# --- Patroni: each member runs its PostgreSQL; the leader key decides the primary -------

write_patroni_yml() { # write_patroni_yml N (1 or 2)
  local n=$1 name=${MEMBERS[$1 - 1]}
  cat >"$STATE/patroni/$name.yml" <<EOF
scope: $SCOPE
name: $name
log:
  level: INFO
restapi:
  listen: 127.0.0.1:${REST_PORTS[$n - 1]}
  connect_address: 127.0.0.1:${REST_PORTS[$n - 1]}
$PATRONI_DCS:
  hosts: $(etcd_endpoints)
bootstrap:
  dcs:
    ttl: $PATRONI_TTL
    loop_wait: $PATRONI_LOOP_WAIT
    retry_timeout: $PATRONI_RETRY_TIMEOUT
    maximum_lag_on_failover: 1048576
    # The leader names its standby in synchronous_standby_names; only that standby may
    # be promoted. Strict: with no standby, commits wait instead of going asynchronous.
    synchronous_mode: true
    synchronous_mode_strict: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        wal_log_hints: 'on'
        hot_standby: 'on'
        hot_standby_feedback: 'on'
        max_wal_senders: 10
        max_replication_slots: 10
        max_connections: 100
        wal_keep_size: 256MB
  initdb:
    - encoding: UTF8
    - data-checksums
postgresql:
  listen: 127.0.0.1:${PG_PORTS[$n - 1]}
  connect_address: 127.0.0.1:${PG_PORTS[$n - 1]}
  data_dir: $STATE/pg/$name
  bin_dir: $(pg_bin)
  pgpass: $STATE/run/pgpass-$name
  authentication:
    superuser: {username: postgres}
    replication: {username: postgres}
    rewind: {username: postgres}
  parameters:
    unix_socket_directories: '$STATE/run'
  # Patroni owns the recovery parameters (it removes them from postgresql.auto.conf): a
  # replay delay for the read routing drill goes here (replica-delay).
  recovery_conf:
    recovery_min_apply_delay: '${APPLY_DELAY:-0}'
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
tags:
  nofailover: false
  noloadbalance: false
EOF
}

start_member() { # start_member NAME: its Patroni (as postgres; it runs PostgreSQL)
  local name=$1 n
  n=$(member_index "$name")
  write_patroni_yml "$n"
  chown postgres "$STATE/patroni/$name.yml" 2>/dev/null || true
  if [ "$(id -u)" = 0 ]; then
    # setpriv execs (no fork): the recorded pid is Patroni's own.
    spawn "patroni-$name" setpriv --reuid=postgres --regid=postgres --init-groups \
      patroni "$STATE/patroni/$name.yml"
  else
    spawn "patroni-$name" patroni "$STATE/patroni/$name.yml"
  fi
}

replica_delay() { # replica_delay NAME DELAY: the member replays WAL DELAY late (e.g. 5s)
  APPLY_DELAY=$2 write_patroni_yml "$(member_index "$1")"
  patronictl_ reload "$SCOPE" "$1" --force >/dev/null
}

member_index() { case "$1" in pg1) echo 1 ;; pg2) echo 2 ;; *) die "no member $1" ;; esac; }

rest() { # rest NAME PATH: HTTP status of Patroni's REST API on that member
  local n
  n=$(member_index "$1")
  curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:${REST_PORTS[$n - 1]}$2" || true
}

member_is() { [ "$(rest "$1" "$2")" = 200 ]; } # member_is NAME PATH

role_holder() { # role_holder PATH (/primary, /replica, /sync): the first member answering 200
  local name
  for name in "${MEMBERS[@]}"; do
    [ "$(rest "$name" "$1")" = 200 ] && { echo "$name"; return 0; }
  done
  return 0
}

has_leader() { [ -n "$(role_holder /primary)" ]; }
has_sync_standby() { [ -n "$(role_holder /sync)" ]; }

leader_sql() {
  "$(pg_bin)/psql" -h 127.0.0.1 -p "$WRITE_PORT" -U postgres -d "${2:-postgres}" -qAtc "$1"
}

start_patroni_cluster() {
  mkdir -p "$STATE/patroni"
  [ "$(id -u)" = 0 ] && chown postgres "$STATE/patroni"
  start_member pg1
  wait_for 90 "Patroni leader pg1" member_is pg1 /primary
}

# --- PgBouncer, Redis, app servers, workers, HAProxy ------------------------------------

# Server-session defaults for what the app sends outside a transaction: PgBouncer forwards
# no `options` startup parameter, and the app's transactions set their own bounds with
# SET LOCAL (docs/operations/cluster.md, "Bounded waits behind PgBouncer").
ms() { awk -v seconds="$1" 'BEGIN { printf "%d", seconds * 1000 }'; }
BOUNDS_QUERY="SET statement_timeout = $(ms "${DATABASE_STATEMENT_TIMEOUT_SECONDS:-5}"); SET lock_timeout = $(ms "${DATABASE_LOCK_TIMEOUT_SECONDS:-3}"); SET idle_in_transaction_session_timeout = $(ms "${DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS:-5}")"

write_pgbouncer_ini() {
  cat >"$STATE/pgbouncer.ini" <<EOF
[databases]
; HAProxy's database frontends: the leader (Patroni's /primary), a replica (/replica).
$DB = host=127.0.0.1 port=$WRITE_PORT dbname=$DB connect_query='$BOUNDS_QUERY'
${DB}_replica = host=127.0.0.1 port=$READ_PORT dbname=$DB connect_query='$BOUNDS_QUERY'

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
# After a failed connect, retry after 1 s (default 15 s): the pool recovers at once when
# HAProxy has the new leader.
server_login_retry = 1
query_wait_timeout = 30
logfile = $STATE/log/pgbouncer.log
pidfile = $STATE/run/pgbouncer.pid
EOF
}

start_pgbouncer() {
  echo '"postgres" ""' >"$STATE/userlist.txt"
  write_pgbouncer_ini
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

haproxy_pg_listen() { # haproxy_pg_listen NAME PORT CHECK_PATH
  cat <<EOF

listen $1
    bind 127.0.0.1:$2
    mode tcp
    # PgBouncer keeps its server connections open: no idle timeout shorter than its own.
    timeout client 1h
    timeout server 1h
    timeout check 1s
    option httpchk
    http-check send meth GET uri $3
    http-check expect status 200
EOF
  # A member holding the leader key answers /primary 200 while its promotion is still
  # running (read-only for a moment): writes go to it only once it runs as the primary.
  [ "$3" = /primary ] && echo '    http-check expect rstring "\"role\": *\"(master|primary)\""'
  cat <<EOF
    # Patroni's REST API answers 200 on $3 only on the member in that role. A member
    # marked down has its sessions cut: PgBouncer reconnects, to the new leader.
    default-server inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions
    server pg1 127.0.0.1:${PG_PORTS[0]} check port ${REST_PORTS[0]}
    server pg2 127.0.0.1:${PG_PORTS[1]} check port ${REST_PORTS[1]}
EOF
}

write_haproxy_cfg() {
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
    # Which app server answered (the drill checks each one's writes).
    http-response set-header X-Served-By %s
    # In-flight requests are left to finish when a server is marked down (a database
    # outage marks every server down: cutting their requests would only add errors).
    default-server check inter 1s fall 2 rise 2
    server app1 127.0.0.1:${APP_PORTS[0]}
    server app2 127.0.0.1:${APP_PORTS[1]}
    # When every app server fails its check (/healthz: the database has no leader), the
    # requests still go to them: their 503 says whether a write was applied
    # (details.outcome), which a bare 503 from HAProxy cannot.
    server app1-backup 127.0.0.1:${APP_PORTS[0]} backup no-check
    server app2-backup 127.0.0.1:${APP_PORTS[1]} backup no-check
$(haproxy_pg_listen pg_leader "$WRITE_PORT" /primary)
$(haproxy_pg_listen pg_replica "$READ_PORT" /replica)

listen stats
    bind 127.0.0.1:$STATS_PORT
    stats enable
    stats uri /stats
EOF
}

start_haproxy() { # the database frontends first (before PgBouncer), then the API
  write_haproxy_cfg
  haproxy -c -q -f "$STATE/haproxy.cfg"
  haproxy -D -f "$STATE/haproxy.cfg"
  wait_for 15 "HAProxy's leader frontend" leader_sql "SELECT 1"
}

# --- faults (used by deploy/failover_drill.py; an operator's runbook too) ----------------

kill_app() { # SIGKILL app server N: its gunicorn master and every worker (one session)
  kill -KILL -- "-$(cat "$STATE/run/app$1.pid")"
}

member_pids() { # member_pids NAME: its Patroni, its postmaster and every child of it
  local name=$1 postmaster
  cat "$STATE/run/patroni-$name.pid" 2>/dev/null || true
  [ -f "$STATE/pg/$name/postmaster.pid" ] || return 0
  postmaster="$(head -1 "$STATE/pg/$name/postmaster.pid")"
  [ -d "/proc/$postmaster" ] || return 0
  echo "$postmaster"
  ps -o pid= --ppid "$postmaster" || true
}

signal_member() { # signal_member SIGNAL NAME: a crashed (KILL) or frozen (STOP) host
  local pids
  pids="$(member_pids "$2" | tr '\n' ' ')"
  [ "$1" = STOP ] && echo "$pids" >"$STATE/run/stopped-$2"
  [ "$1" = CONT ] && [ -f "$STATE/run/stopped-$2" ] && pids="$(cat "$STATE/run/stopped-$2")"
  # shellcheck disable=SC2086
  kill "-$1" $pids 2>/dev/null || true
  [ "$1" = CONT ] && rm -f "$STATE/run/stopped-$2"
  return 0
}

haproxy_up() { # haproxy_up BACKEND SERVER: HAProxy has that server UP
  curl -s "http://127.0.0.1:$STATS_PORT/stats;csv" | grep -q "^$1,$2,.*,UP,"
}

switchover() { # switchover NAME: planned, without an error for the clients
  # PAUSE: PgBouncer lets running transactions finish, holds new ones and closes its
  # server connections; Patroni moves the leader key (the old primary shuts down with
  # no transaction in flight); once HAProxy routes to NAME, RESUME releases the queue.
  local bin current
  bin="$(pg_bin)"
  current="$(role_holder /primary)"
  [ -n "$current" ] && [ "$current" != "$1" ] || die "switchover: the leader is '$current'"
  # In synchronous mode Patroni hands the key only to the synchronous standby.
  wait_for 60 "$1 as the synchronous standby" member_is "$1" /sync
  "$bin/psql" -h 127.0.0.1 -p "$PGBOUNCER_PORT" -U postgres -d pgbouncer -qc "PAUSE $DB" >/dev/null
  trap '"$(pg_bin)/psql" -h 127.0.0.1 -p "$PGBOUNCER_PORT" -U postgres -d pgbouncer -qc "RESUME $DB" >/dev/null' EXIT
  patronictl_ switchover --leader "$current" --candidate "$1" --force >"$STATE/log/switchover.log" 2>&1
  wait_for 60 "HAProxy routing writes to $1" haproxy_up pg_leader "$1"
}

kill_etcd() { kill -KILL "$(cat "$STATE/run/etcd$1.pid")" 2>/dev/null || true; }

# --- commands ----------------------------------------------------------------------------

start() {
  [ -d "$STATE" ] && die "$STATE exists: a cluster is running or was left behind (make cluster-stop)"
  for port in "$HAPROXY_PORT" "$STATS_PORT" "${APP_PORTS[@]}" "$PGBOUNCER_PORT" \
    "${PG_PORTS[@]}" "$WRITE_PORT" "$READ_PORT" "$REDIS_PORT" "${REST_PORTS[@]}" \
    "${ETCD_PORTS[@]}" "${ETCD_PEER_PORTS[@]}"; do
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
  log "etcd: 3 members on ${ETCD_PORTS[*]}"
  start_etcd_cluster
  log "Patroni pg1 (REST ${REST_PORTS[0]}): bootstraps the cluster, PostgreSQL on ${PG_PORTS[0]}"
  start_patroni_cluster
  log "HAProxy: leader on $WRITE_PORT (/primary), replica on $READ_PORT (/replica)"
  start_haproxy
  # Strict synchronous mode: no commit (CREATE DATABASE included) returns before the
  # standby has it. So the standby comes first.
  log "Patroni pg2 (REST ${REST_PORTS[1]}): synchronous standby on ${PG_PORTS[1]}"
  start_member pg2
  wait_for 120 "the synchronous standby pg2" member_is pg2 /sync
  "$(pg_bin)/createdb" -h 127.0.0.1 -p "$WRITE_PORT" -U postgres "$DB"
  log "migrating (directly on the leader, once per release)"
  DATABASE_URL="$CLUSTER_PRIMARY_URL" .venv/bin/python manage.py migrate --noinput >"$STATE/log/migrate.log"
  wait_for 15 "HAProxy's replica frontend" pg_answers "$READ_PORT" "$DB"
  log "PgBouncer (transaction pooling) on $PGBOUNCER_PORT, Redis on $REDIS_PORT"
  start_pgbouncer
  start_redis
  log "app servers on ${APP_PORTS[*]}, $WORKERS job workers"
  start_app_servers
  start_workers
  wait_for 15 "HAProxy's API frontend" curl -fsS "$CLUSTER_URL/healthz"
  status
  log "up: $CLUSTER_URL — environment for manage.py: . .cluster/env; stop: make cluster-stop"
}

kill_recorded() { # kill the process group of each pid this script recorded
  local pidfile pid
  for name in "${MEMBERS[@]}"; do signal_member CONT "$name"; done
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

patronictl_() { patronictl -c "$STATE/patroni/pg1.yml" "$@"; }

status() {
  # shellcheck source=/dev/null
  . "$STATE/env"
  printf '%-12s %s\n' haproxy "$CLUSTER_URL/healthz → $(curl -s "$CLUSTER_URL/healthz")"
  for port in "${APP_PORTS[@]}"; do
    printf '%-12s %s\n' "app :$port" "$(curl -s "http://127.0.0.1:$port/healthz")"
  done
  printf '%-12s %s\n' pgbouncer "$(pg_answers "$PGBOUNCER_PORT" "$DB" >/dev/null 2>&1 && echo up || echo down)"
  printf '%-12s %s\n' leader "$(role_holder /primary)"
  printf '%-12s %s\n' sync "$(role_holder /sync)"
  patronictl_ list 2>/dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) cat "$STATE/env" ;;
  leader) role_holder /primary ;;
  replica) role_holder /replica ;;
  member-kill) signal_member KILL "$2" ;;
  member-stop) signal_member STOP "$2" ;;
  member-cont) signal_member CONT "$2" ;;
  member-start) start_member "$2" ;;
  replica-delay) replica_delay "$2" "$3" ;;
  switchover) switchover "$2" ;;
  etcd-kill) kill_etcd "$2" ;;
  etcd-start) start_etcd "$2" ;;
  app-start) start_app "$2" && wait_for_app "$2" ;;
  app-kill) kill_app "$2" ;;
  patronictl) shift && patronictl_ "$@" ;;
  *)
    echo "usage: $0 start|stop|status|env|leader|replica|switchover NAME|replica-delay NAME DELAY|member-kill|member-stop|member-cont|member-start NAME|etcd-kill|etcd-start N|app-start|app-kill N|patronictl ARGS" >&2
    exit 2
    ;;
esac
