#!/usr/bin/env bash
# Drain benchmark, in one sitting on one stack: the shared harness's ceilings
# (JetStream publish, raw COPY on 1 and 2 streams) and its Node.js peer, then
# Trail draining the same N pre-published events (fetch -> validate -> batch ->
# COPY -> commit -> ack -> republish). Prints Trail's rate and its ratios.
#
#   load-tests/drain-bench.sh                 # N=1000000, RUNS=1
#   N=300000 RUNS=3 load-tests/drain-bench.sh
#   TRAILD_BEFORE=/path/to/older/traild N=300000 RUNS=3 load-tests/drain-bench.sh
#       # also drains with an older build (its own schema), in the same sitting:
#       # the cost of a change as a ratio (T1 / T0)
#
# Needs ../shared/bench beside the project, node + npm (for the peer), and a
# built tree (make build). Results: build/bench-work/results/<stamp>/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
N=${N:-1000000}
RUNS=${RUNS:-1}
WORK=$ROOT/build/bench-work
[ -x "$ROOT/build/bin/traild" ] || { echo "build first: make build" >&2; exit 1; }
command -v npm >/dev/null || { echo "the peer needs node and npm" >&2; exit 1; }

mkdir -p "$WORK"
# The harness, copied so that it can write its results (shared/ is read-only).
rsync -a --exclude results --exclude node_modules "$SHARED/" "$WORK/" 2>/dev/null || {
  find "$SHARED" -mindepth 1 -maxdepth 1 ! -name results ! -name node_modules -exec cp -r {} "$WORK/" \;
}
cd "$WORK"
export DATA=${DATA:-/tmp/bench-data}
N=$N RUNS=$RUNS ONLY="B1 A1 A2 P1" KEEP_STACK=1 ./run_all.sh
OUT=$(ls -d "$WORK"/results/*/ | sort | tail -n 1)
eval "$(./stack.sh env)"
trap './stack.sh stop' EXIT

export TRAIL_NATS_URL=$NATS_URL
export TRAIL_PG_DSN=postgresql://postgres@127.0.0.1:$PGPORT/trail_bench
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export TRAIL_HTTP_ADDR=127.0.0.1:$(free_port) TRAIL_METRICS_ADDR=127.0.0.1:$(free_port)
export TRAIL_LOG_LEVEL=warn TRAIL_BENCH_LOG=$OUT/traild.log
SETUP="psql -Xqd postgres -c 'DROP DATABASE IF EXISTS trail_bench WITH (FORCE)' -c 'CREATE DATABASE trail_bench' \
  && $ROOT/build/bin/traild migrate 2>/dev/null && ./natsbench delete-consumer -c trail-ingest >/dev/null 2>&1; \
  ./natsbench delete-consumer -c audit-ingest >/dev/null 2>&1; psql -Xqc CHECKPOINT; true"
VERIFY="n=\$(psql -XAtd trail_bench -c 'SELECT count(*) FROM audit.events'); echo count=\$n; [ \"\$n\" = $N ] \
  && ./natsbench info -c trail-ingest | grep -q ' num_pending=0 num_ack_pending=0 '"
python3 lib/measure.py --out "$OUT/results.jsonl" --log "$OUT/measure.log" --name T1-trail-drain --rows "$N" \
  --runs "$RUNS" --setup "$SETUP" --verify "$VERIFY" -- "$ROOT/load-tests/drain-run.sh $WORK/natsbench"

if [ -n "${TRAILD_BEFORE:-}" ]; then
  SETUP_BEFORE=${SETUP//"$ROOT/build/bin/traild"/$TRAILD_BEFORE}
  TRAILD_BIN=$TRAILD_BEFORE python3 lib/measure.py --out "$OUT/results.jsonl" --log "$OUT/measure.log" \
    --name T0-trail-drain-before --rows "$N" --runs "$RUNS" --setup "$SETUP_BEFORE" --verify "$VERIFY" \
    -- "$ROOT/load-tests/drain-run.sh $WORK/natsbench"
fi

python3 - "$OUT/results.jsonl" <<'PY' | tee "$OUT/trail-summary.md"
import json, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows[r["name"]] = r
def rate(name):
    r = rows.get(name)
    if not r: return None
    for k in ("rows_per_s_median", "median_rows_per_s", "rate_median"):
        if k in r: return r[k]
    return r.get("median", {}).get("rows_per_s") if isinstance(r.get("median"), dict) else None
t = rate("T1-trail-drain"); a1 = rate("A1-copy-1stream"); a2 = rate("A2-copy-2streams"); p = rate("P1-peer-node")
print("| measure | events/s |")
print("|---|---|")
for name in ("A1-copy-1stream", "A2-copy-2streams", "B1-pub-async-w65536", "P1-peer-node", "T0-trail-drain-before", "T1-trail-drain"):
    v = rate(name)
    if v: print("| %s | %.0f |" % (name, v))
if t and a2: print("\nTrail / 2-stream COPY ceiling: %.2f" % (t / a2))
if t and a1: print("Trail / 1-stream COPY ceiling: %.2f" % (t / a1))
if t and p: print("Trail / Node peer: %.2f" % (t / p))
t0 = rate("T0-trail-drain-before")
if t and t0: print("Trail / the older build (TRAILD_BEFORE): %.3f" % (t / t0))
PY
