#!/usr/bin/env bash
# The latency tail, with its evidence: publishes at a fixed rate through a
# fresh traild on its own stack (build/probe-stack, fsync on) and prints, for
# each second, the p99 beside the CPU of each server, WAL volume, checkpoints
# and autovacuum workers (load-tests/tail_probe.py).
#
#   load-tests/tail-probe.sh [RATE] [SECONDS]          # default 9000 events/s for 60 s
#   PG_SET="max_wal_size=4GB checkpoint_timeout=5min wal_compression=off" load-tests/tail-probe.sh
#       # the same run with other server settings (ALTER SYSTEM, then reload), e.g. PostgreSQL's defaults
#
# The stack is created once with config/postgresql.conf (PG_CONF as in
# scripts/stack.sh); PG_SET applies on top for one run and is reset afterwards.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATE=${1:-9000}
SECS=${2:-60}
export STACK_DIR=${STACK_DIR:-$ROOT/build/probe-stack}
NATS_PORT=${NATS_PORT:-0} PG_PORT=${PG_PORT:-0} "$ROOT/scripts/stack.sh" start >/dev/null
set -a; . "$STACK_DIR/env"; set +a
NATS_URL=$TRAIL_NATS_URL PG_PORT=$DEV_PG_PORT
OUT=$ROOT/build/probe-results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
ADMIN="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
reset_settings() { psql -XAtqd "$ADMIN" -c "ALTER SYSTEM RESET ALL" -c "SELECT pg_reload_conf()" >/dev/null; }
trap reset_settings EXIT
reset_settings
for kv in ${PG_SET:-}; do
  psql -XAtqd "$ADMIN" -c "ALTER SYSTEM SET ${kv%%=*} = '${kv#*=}'" >/dev/null
done
psql -XAtqd "$ADMIN" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
psql -XAtqd "$ADMIN" -c "SELECT name || '=' || setting || coalesce(unit, '') FROM pg_settings WHERE name IN
  ('max_wal_size','checkpoint_timeout','wal_compression','checkpoint_completion_target','autovacuum_vacuum_cost_limit',
   'autovacuum_vacuum_insert_scale_factor','shared_buffers') ORDER BY 1" | tr '\n' ' ' | tee "$OUT/settings.txt"
echo
psql -XAtqd "$ADMIN" -c "DROP DATABASE IF EXISTS trail_probe WITH (FORCE)" -c "CREATE DATABASE trail_probe" >/dev/null
export TRAIL_PG_DSN="postgresql://postgres@127.0.0.1:$PG_PORT/trail_probe"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export TRAIL_HTTP_ADDR=127.0.0.1:$(free_port) TRAIL_METRICS_ADDR=127.0.0.1:$(free_port) TRAIL_LOG_LEVEL=warn
"$ROOT/build/bin/traild" migrate >/dev/null 2>&1
"$ROOT/build/bin/traild" run 2>"$OUT/traild.log" &
TRAILD=$!
trap 'kill -TERM $TRAILD 2>/dev/null; wait $TRAILD 2>/dev/null; reset_settings' EXIT
for _ in $(seq 100); do curl -fsS "http://$TRAIL_HTTP_ADDR/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
# Warm-up (not measured): tenant heads and caches.
"$ROOT/build/bin/trail-loadgen" --url "$NATS_URL" --rate "$RATE" --duration 10 -q >/dev/null || true
python3 "$ROOT/load-tests/tail_probe.py" --loadgen-csv "$OUT/loadgen.csv" --dsn "$TRAIL_PG_DSN" --out "$OUT/probe.csv" \
  --metrics "http://$TRAIL_METRICS_ADDR/metrics" \
  --pid traild=$TRAILD --pid nats="$(tr -dc 0-9 <"$STACK_DIR/nats/nats-server.pid")" \
  --pid pg="$(head -1 "$(psql -XAtqd "$ADMIN" -c 'SHOW data_directory')/postmaster.pid")" \
  -- "$ROOT/build/bin/trail-loadgen" --url "$NATS_URL" --rate "$RATE" --duration "$SECS" --csv "$OUT/loadgen.csv" \
     --json "$OUT/loadgen.json" -q
echo "results: $OUT"
