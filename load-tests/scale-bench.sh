#!/usr/bin/env bash
# Drain with 1, 2 and 3 traild replicas sharing one durable consumer, on a
# 3-node nats-server cluster (JetStream streams with 3 replicas) and one
# PostgreSQL, in one sitting on this machine. Each run: a fresh database and
# fresh streams, N events published first (trail-loadgen), then the replicas
# started together and timed until every event is stored and acked.
#
#   load-tests/scale-bench.sh                 # N=200000, REPLICAS="1 2 3", RUNS=2
#   N=100000 RUNS=1 load-tests/scale-bench.sh
#
# Everything (3 nats-servers, PostgreSQL, the replicas, the publisher) shares
# this machine's cores: the figures say how the pieces behave together, not
# what separate machines would give. Results: build/scale-bench/results.jsonl.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-200000}
REPLICAS=${REPLICAS:-1 2 3}
RUNS=${RUNS:-2}
WORK=$ROOT/build/scale-bench
[ -x "$ROOT/build/bin/traild" ] || { echo "build first: make build" >&2; exit 1; }
rm -rf "$WORK" && mkdir -p "$WORK"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# PostgreSQL with Trail's settings (the test stack's script), and three NATS nodes.
STACK_DIR=$WORK/stack NATS_PORT=0 PG_PORT=0 "$ROOT/scripts/stack.sh" start >/dev/null
# shellcheck disable=SC1091
. "$WORK/stack/env"
STACK_DIR=$WORK/stack "$ROOT/scripts/stack.sh" stop-nats >/dev/null 2>&1 || true
declare -a CP LP PIDS
for i in 0 1 2; do CP[$i]=$(free_port); LP[$i]=$(free_port); done
for i in 0 1 2; do
  routes=""
  for j in 0 1 2; do [ "$j" = "$i" ] || routes="$routes${routes:+,} nats-route://127.0.0.1:${LP[$j]}"; done
  cat >"$WORK/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:${CP[$i]}
jetstream { store_dir: "$WORK/n$i", max_mem: 512M, max_file: 16G }
cluster { name: trail-bench, listen: 127.0.0.1:${LP[$i]}, routes: [$routes ] }
EOF
  nats-server -c "$WORK/n$i.conf" >"$WORK/n$i.log" 2>&1 &
  PIDS[$i]=$!
done
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  STACK_DIR=$WORK/stack "$ROOT/scripts/stack.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
URLS="nats://127.0.0.1:${CP[0]},nats://127.0.0.1:${CP[1]},nats://127.0.0.1:${CP[2]}"
PG_ADMIN=$TRAIL_PG_DSN
DB_DSN=${PG_ADMIN%/*}/trail_scale
sleep 3

run() {  # replicas run
  local k=$1 r=$2
  psql -Xq "$PG_ADMIN" -c 'DROP DATABASE IF EXISTS trail_scale WITH (FORCE)' -c 'CREATE DATABASE trail_scale'
  TRAIL_PG_DSN=$DB_DSN "$ROOT/build/bin/traild" --log-level error migrate
  # Streams: deleted and created again by the first traild; the events go into AUDIT first.
  for s in AUDIT AUDIT_DLQ AUDIT_COMMITTED AUDIT_CHECKPOINTS; do
    python3 -c "import sys; sys.path.insert(0, '$ROOT/load-tests'); import bench; bench.js_api('${URLS%%,*}', '\$JS.API.STREAM.DELETE.$s')" >/dev/null 2>&1 || true
  done
  python3 -c "import sys, json; sys.path.insert(0, '$ROOT/load-tests'); import bench; bench.js_api('${URLS%%,*}', '\$JS.API.STREAM.CREATE.AUDIT', json.dumps({'name': 'AUDIT', 'subjects': ['audit.events', 'audit.events.>'], 'storage': 'file', 'num_replicas': 3, 'duplicate_window': 120000000000}).encode())" >/dev/null
  "$ROOT/build/bin/trail-loadgen" --url "$URLS" --count "$N" --rate 0 --tenants 1000 --zipf 1.1 --mode mixed \
    --invalid-share 0 --drain-timeout 0 --quiet --json "$WORK/publish-$k-$r.json"
  local pids=() start end
  start=$(date +%s.%N)
  for ((i = 0; i < k; i++)); do
    TRAIL_NATS_URL=$URLS TRAIL_NATS_STREAM_REPLICAS=3 TRAIL_PG_DSN=${DB_DSN/postgres@/trail_ingest@} \
      TRAIL_HTTP_ADDR=127.0.0.1:$(free_port) TRAIL_METRICS_ADDR=127.0.0.1:$(free_port) TRAIL_LOG_LEVEL=warn \
      "$ROOT/build/bin/traild" run 2>>"$WORK/traild-$k-$r.log" &
    pids+=($!)
  done
  local n=0
  while :; do
    n=$(psql -XAt "$DB_DSN" -c 'SELECT count(*) FROM audit.events')
    [ "$n" -ge "$N" ] && break
    sleep 0.2
  done
  end=$(date +%s.%N)
  local cpu=0
  for p in "${pids[@]}"; do cpu=$(python3 -c "print($cpu + sum(int(x) for x in open('/proc/$p/stat').read().split()[13:15]) / $(getconf CLK_TCK))"); done
  kill -TERM "${pids[@]}" && wait "${pids[@]}" 2>/dev/null || true
  python3 -c "import json; print(json.dumps({'replicas': $k, 'run': $r, 'events': $N, 'seconds': round($end - $start, 2), 'events_per_s': round($N / ($end - $start)), 'traild_cpu_us_per_event': round($cpu * 1e6 / $N, 1)}))" |
    tee -a "$WORK/results.jsonl"
}
for ((r = 1; r <= RUNS; r++)); do
  for k in $REPLICAS; do run "$k" "$r"; done
done
python3 - "$WORK/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows: by.setdefault(r["replicas"], []).append(r)
base = statistics.median(r["events_per_s"] for r in by[min(by)])
print("| traild replicas | drain, events/s (median) | runs | vs 1 replica | traild CPU per event, µs |")
print("|---|---|---|---|---|")
for k in sorted(by):
    rate = statistics.median(r["events_per_s"] for r in by[k])
    cpu = statistics.median(r["traild_cpu_us_per_event"] for r in by[k])
    print("| %d | %s | %s | %.2f | %.1f |" % (k, f"{int(rate):,}", ", ".join(f"{r['events_per_s']:,}" for r in by[k]), rate / base, cpu))
PY
