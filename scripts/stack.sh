#!/usr/bin/env bash
# Local nats-server (JetStream, file store) + PostgreSQL 15 cluster for Trail:
# real processes on loopback, state under one directory.
#
#   scripts/stack.sh start   # idempotent: starts what is not running, writes $STACK_DIR/env
#   scripts/stack.sh stop    # stops what this script started (by pid file)
#   scripts/stack.sh status
#   scripts/stack.sh sweep   # kills every process the test suite started under this stack (see below)
#   scripts/stack.sh fresh   # sweep, destroy, start: the suite's first step, whatever a killed run left
#   scripts/stack.sh restart-pg | stop-pg | start-pg | restart-nats | freeze-pg | thaw-pg   (fault tests use these)
#
# Environment:
#   STACK_DIR   state directory (default: <repo>/.dev)
#   NATS_PORT   client port; 0 = a free port (default 4222)
#   NATS_MON_PORT monitoring port; 0 = a free port (default 0)
#   PG_PORT     PostgreSQL port; 0 = a free port (default 5432)
#   PG_DB       database name (default trail)
#   PG_SHARED_BUFFERS (default 256MB)
#   PG_CONF     server settings appended at initdb (default config/postgresql.conf; none = PostgreSQL defaults)
# Ports chosen once are kept in $STACK_DIR/ports, so a restart reuses them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.dev}
PG_DB=${PG_DB:-trail}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
NATS_BIN=${NATS_BIN:-$(command -v nats-server || echo /usr/bin/nats-server)}
STACK_DIR_GIVEN=$STACK_DIR
mkdir -p "$STACK_DIR"
STACK_DIR=$(cd "$STACK_DIR" && pwd)

log() { echo "[stack] $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ---- ports: decided once per state directory --------------------------------
PORTS_FILE=$STACK_DIR/ports
if [ -f "$PORTS_FILE" ]; then
  # shellcheck disable=SC1090
  . "$PORTS_FILE"
else
  NATS_PORT=${NATS_PORT:-4222}; [ "$NATS_PORT" = 0 ] && NATS_PORT=$(free_port)
  NATS_MON_PORT=${NATS_MON_PORT:-0}; [ "$NATS_MON_PORT" = 0 ] && NATS_MON_PORT=$(free_port)
  PG_PORT=${PG_PORT:-5432}; [ "$PG_PORT" = 0 ] && PG_PORT=$(free_port)
  printf 'NATS_PORT=%s\nNATS_MON_PORT=%s\nPG_PORT=%s\n' "$NATS_PORT" "$NATS_MON_PORT" "$PG_PORT" >"$PORTS_FILE"
fi

NATS_DIR=$STACK_DIR/nats
NATS_PID_FILE=$NATS_DIR/nats-server.pid

# PostgreSQL refuses to run as root; as root we run it as the `postgres` user,
# which must be able to reach its data directory. A checkout under /root is not
# reachable for it, so the cluster then lives under /var/tmp instead.
if [ "$(id -u)" = 0 ]; then
  PG_USER=postgres
  if runuser -u postgres -- test -x "$STACK_DIR" 2>/dev/null; then
    PG_DIR=$STACK_DIR/pg
  else
    PG_DIR=/var/tmp/trail-pg-$(printf '%s' "$STACK_DIR" | md5sum | cut -c1-10)
  fi
else
  PG_USER=$(id -un)
  PG_DIR=$STACK_DIR/pg
fi
PG_DATA=$PG_DIR/data

as_pg() { if [ "$(id -un)" = "$PG_USER" ]; then "$@"; else runuser -u "$PG_USER" -- "$@"; fi; }
pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
nats_pid() { [ -f "$NATS_PID_FILE" ] && tr -dc '0-9' <"$NATS_PID_FILE" || true; }
pg_pid() { [ -f "$PG_DATA/postmaster.pid" ] && head -n1 "$PG_DATA/postmaster.pid" | tr -dc '0-9' || true; }

wait_port() { # port timeout_s
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

start_nats() {
  local pid; pid=$(nats_pid)
  if pid_alive "$pid"; then return 0; fi
  mkdir -p "$NATS_DIR/store"
  cat >"$NATS_DIR/nats.conf" <<CONF
# written by scripts/stack.sh
server_name: trail_dev
listen: 127.0.0.1:$NATS_PORT
http: 127.0.0.1:$NATS_MON_PORT
pid_file: "$NATS_PID_FILE"
max_payload: 1MB
jetstream {
  store_dir: "$NATS_DIR/store"
  max_memory_store: 256MB
  max_file_store: 20GB
}
CONF
  log "starting nats-server on 127.0.0.1:$NATS_PORT (monitor $NATS_MON_PORT)"
  setsid "$NATS_BIN" -c "$NATS_DIR/nats.conf" >>"$NATS_DIR/nats-server.log" 2>&1 </dev/null &
  if ! wait_port "$NATS_PORT" 20 || ! wait_port "$NATS_MON_PORT" 5; then
    log "nats-server did not come up; last lines of $NATS_DIR/nats-server.log:"
    tail -n 20 "$NATS_DIR/nats-server.log" >&2
    return 1
  fi
}

init_pg() {
  mkdir -p "$PG_DIR"
  chown "$PG_USER": "$PG_DIR"
  [ -f "$PG_DATA/PG_VERSION" ] && return 0
  log "initdb $PG_DATA"
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=trust \
    --encoding=UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  cat >>"$PG_DATA/postgresql.conf" <<CONF

# ---- scripts/stack.sh: loopback only, durable settings ----
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 100
shared_buffers = ${PG_SHARED_BUFFERS:-256MB}
max_wal_size = 4GB
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
CONF
  # Trail's recommended server settings (config/postgresql.conf); PG_CONF=none
  # leaves PostgreSQL's defaults, PG_CONF=<file> appends another file.
  local conf=${PG_CONF:-$ROOT/config/postgresql.conf}
  if [ "$conf" != none ]; then
    { echo "# ---- $conf ----"; cat "$conf"; } >>"$PG_DATA/postgresql.conf"
  fi
  printf 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' >"$PG_DATA/pg_hba.conf"
}

start_pg() {
  local pid; pid=$(pg_pid)
  if pid_alive "$pid"; then return 0; fi
  init_pg
  log "starting postgres 15 on 127.0.0.1:$PG_PORT (data $PG_DATA)"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/postgres.log" -w -t 60 -s start \
    || { tail -n 20 "$PG_DIR/postgres.log" >&2; return 1; }
  local exists
  exists=$(as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -XqAtc \
    "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")
  [ "$exists" = 1 ] || as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Xqc "CREATE DATABASE $PG_DB"
}

stop_pg() {
  local pid; pid=$(pg_pid)
  pid_alive "$pid" || return 0
  log "stopping postgres (pid $pid)"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 -s stop || kill -9 "$pid" 2>/dev/null || true
}

# Freezing a server (SIGSTOP) black-holes it: connections stay open and the
# kernel still accepts, but nothing answers. Fault tests use it.
pg_pids() { local pid; pid=$(pg_pid); pid_alive "$pid" && { echo "$pid"; pgrep -P "$pid" || true; }; }
signal_pg() { local p; for p in $(pg_pids); do kill "-$1" "$p" 2>/dev/null || true; done; }

stop_nats() {
  local pid i; pid=$(nats_pid)
  pid_alive "$pid" || return 0
  log "stopping nats-server (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do pid_alive "$pid" || return 0; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
}

# Every process the test programs start carries TRAILTEST_STACK=<stack dir>
# in its environment (tests/integration/children.h), and so does whatever
# those start in turn. The harness kills them itself; this finds whatever
# escaped it (a test killed by SIGKILL mid-start, a grandchild of a shell),
# so that one broken test cannot leave a traild consuming the next one's
# messages.
sweep() {
  local env pid n=0 self=$$
  for env in /proc/[0-9]*/environ; do
    pid=${env#/proc/}; pid=${pid%/environ}
    [ "$pid" = "$self" ] && continue
    if { tr '\0' '\n' <"$env"; } 2>/dev/null |
      grep -qxF -e "TRAILTEST_STACK=$STACK_DIR" -e "TRAILTEST_STACK=$STACK_DIR_GIVEN"; then
      kill -9 "$pid" 2>/dev/null && n=$((n + 1))
    fi
  done
  [ "$n" = 0 ] || log "killed $n process(es) left behind by tests"
}

write_env() {
  cat >"$STACK_DIR/env" <<ENV
TRAIL_NATS_URL=nats://127.0.0.1:$NATS_PORT
TRAIL_PG_DSN=postgresql://postgres@127.0.0.1:$PG_PORT/$PG_DB
TRAIL_NATS_MONITOR_URL=http://127.0.0.1:$NATS_MON_PORT
DEV_NATS_PORT=$NATS_PORT
DEV_PG_PORT=$PG_PORT
ENV
}

case "${1:-}" in
  start) start_nats; start_pg; write_env; log "up; settings in $STACK_DIR/env" ;;
  stop) stop_pg; stop_nats ;;
  stop-pg) stop_pg ;;
  start-pg) start_pg ;;
  restart-pg) stop_pg; start_pg ;;
  freeze-pg) signal_pg STOP ;;
  thaw-pg) signal_pg CONT ;;
  stop-nats) stop_nats ;;
  start-nats) start_nats ;;
  restart-nats) stop_nats; start_nats ;;
  status)
    p=$(nats_pid); pid_alive "$p" && echo "nats-server running (pid $p, port $NATS_PORT)" || echo "nats-server stopped"
    p=$(pg_pid); pid_alive "$p" && echo "postgres running (pid $p, port $PG_PORT)" || echo "postgres stopped"
    ;;
  sweep) sweep ;;
  # A frozen server (a test that died between freeze and thaw) is thawed first, so that it can stop.
  destroy) sweep; signal_pg CONT; stop_pg; stop_nats; rm -rf "$STACK_DIR" "$PG_DIR" ;;
  fresh)
    sweep; signal_pg CONT; stop_pg; stop_nats; rm -rf "$STACK_DIR" "$PG_DIR"
    exec env STACK_DIR="$STACK_DIR_GIVEN" "$0" start ;;
  *) echo "usage: $0 start|stop|status|sweep|fresh|stop-pg|start-pg|restart-pg|freeze-pg|thaw-pg|stop-nats|start-nats|restart-nats|destroy" >&2; exit 2 ;;
esac
