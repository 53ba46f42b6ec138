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
#       # the cost of a change as a ratio (T1 / T0); with LABEL="what changed"
#       # the summary also goes into BENCHMARKS.md ("Against an older build")
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
# Trail's recommended PostgreSQL settings (config/postgresql.conf; PG_EXTRA_CONF=/dev/null for the server's
# defaults), applied at initdb to the ceilings and to Trail alike: a fresh cluster for each sitting.
export PG_EXTRA_CONF=${PG_EXTRA_CONF:-$ROOT/config/postgresql.conf}
./stack.sh stop >/dev/null 2>&1 || true
rm -rf "${PG_DIR:-/tmp/bench-pg}"
# CEILINGS="B1" skips the COPY ceilings and the peer (B1 publishes the events).
N=$N RUNS=$RUNS ONLY="${CEILINGS:-B1 A1 A2 P1}" KEEP_STACK=1 ./run_all.sh
OUT=$(ls -d "$WORK"/results/*/ | sort | tail -n 1)
eval "$(./stack.sh env)"
trap './stack.sh stop' EXIT

export TRAIL_NATS_URL=$NATS_URL
export TRAIL_PG_DSN=postgresql://postgres@127.0.0.1:$PGPORT/trail_bench
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export TRAIL_HTTP_ADDR=127.0.0.1:$(free_port) TRAIL_METRICS_ADDR=127.0.0.1:$(free_port)
export TRAIL_LOG_LEVEL=warn TRAIL_BENCH_LOG=$OUT/traild.log
# Each run starts without a committed stream (traild creates it unless nats.committed_stream is empty).
DELETE_COMMITTED="python3 -c 'import sys; sys.path.insert(0, \"$ROOT/load-tests\"); import bench; \
bench.js_api(\"$NATS_URL\", \"\$JS.API.STREAM.DELETE.AUDIT_COMMITTED\")'"
SETUP="psql -Xqd postgres -c 'DROP DATABASE IF EXISTS trail_bench WITH (FORCE)' -c 'CREATE DATABASE trail_bench' \
  && $ROOT/build/bin/traild migrate 2>/dev/null && ./natsbench delete-consumer -c trail-ingest >/dev/null 2>&1; \
  $DELETE_COMMITTED >/dev/null 2>&1; \
  ./natsbench delete-consumer -c audit-ingest >/dev/null 2>&1; psql -Xqc CHECKPOINT; true"
VERIFY="n=\$(psql -XAtd trail_bench -c 'SELECT count(*) FROM audit.events'); echo count=\$n; [ \"\$n\" = $N ] \
  && ./natsbench info -c trail-ingest | grep -q ' num_pending=0 num_ack_pending=0 '"
measure_trail() {  # name binary runs setup
  TRAIL_DRAIN_METRICS=$OUT/metrics-$1.txt TRAILD_BIN=$2 python3 lib/measure.py --out "$OUT/results.jsonl" --log "$OUT/measure.log" --name "$1" --rows "$N" \
    --runs "$3" --setup "$4" --verify "$VERIFY" -- "$ROOT/load-tests/drain-run.sh $WORK/natsbench"
}
if [ -z "${TRAILD_BEFORE:-}" ]; then
  measure_trail T1-trail-drain "$ROOT/build/bin/traild" "$RUNS" "$SETUP"
else
  # Alternating, one run each in turn and the order swapped every round, so
  # that a slow spell of the machine does not fall on one side only; medians
  # over the runs. One uncounted drain first: the first drain of a sitting
  # runs on cold caches (measured 20-25% slower), whichever build it is.
  SETUP_BEFORE=${SETUP//"$ROOT/build/bin/traild"/$TRAILD_BEFORE}
  measure_trail W-warm-up "$ROOT/build/bin/traild" 1 "$SETUP"
  for ((i = 1; i <= RUNS; i++)); do
    if ((i % 2)); then
      measure_trail T1-trail-drain "$ROOT/build/bin/traild" 1 "$SETUP"
      measure_trail T0-trail-drain-before "$TRAILD_BEFORE" 1 "$SETUP_BEFORE"
    else
      measure_trail T0-trail-drain-before "$TRAILD_BEFORE" 1 "$SETUP_BEFORE"
      measure_trail T1-trail-drain "$ROOT/build/bin/traild" 1 "$SETUP"
    fi
  done
fi

N_ROWS=$N RUNS=$RUNS LABEL=${LABEL:-} BEFORE=${TRAILD_BEFORE:-} BENCHMARKS=$ROOT/BENCHMARKS.md \
  python3 - "$OUT/results.jsonl" <<'PY' | tee "$OUT/trail-summary.md"
import json, os, sys
N_ROWS = int(os.environ["N_ROWS"])
import statistics
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault(r["name"], []).append(r)
def med(name, key):
    # One line per measure.py call: the median of their medians.
    vals = [r.get(key) for r in rows.get(name, []) if r.get(key) is not None]
    return statistics.median(vals) if vals else None
def rate(name):
    return med(name, "rows_per_s_median")
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
if t and t0:
    print("Trail / the older build (TRAILD_BEFORE): %.3f" % (t / t0))
    for key, what in (("cpu_client_s_median", "traild"), ("cpu_nats_s_median", "nats-server"),
                      ("cpu_pg_s_median", "PostgreSQL"), ("wal_bytes_median", "WAL bytes")):
        a, b = med("T1-trail-drain", key), med("T0-trail-drain-before", key)
        if a and b:
            scale = 1 if key == "wal_bytes_median" else 1e6
            print("per event, %s: %.1f (older build %.1f)" % (what, a * scale / N_ROWS, b * scale / N_ROWS))
# Events per transaction, from each run's /metrics at the end of its drain.
out_dir = os.path.dirname(sys.argv[1])
for name in ("T1-trail-drain", "T0-trail-drain-before"):
    path = os.path.join(out_dir, "metrics-%s.txt" % name)
    if not os.path.exists(path): continue
    sums = {}
    for line in open(path):
        k, v = line.split()
        sums[k] = sums.get(k, 0.0) + float(v)
    if sums.get("trail_transaction_events_count"):
        print("%s: %.0f transactions, %.0f events per transaction" % (name, sums["trail_transaction_events_count"],
              sums["trail_transaction_events_sum"] / sums["trail_transaction_events_count"]))
# With a label, the comparison is a section of BENCHMARKS.md of its own.
label = os.environ.get("LABEL")
if label and t and t0:
    import datetime
    def spread(name):
        vals = sorted(r["rows_per_s_median"] for r in rows.get(name, []))
        return "%s–%s" % (f"{int(vals[0]):,}", f"{int(vals[-1]):,}")
    lines = ["<!-- drain-bench: begin -->", "## Against an older build", "",
             "Generated by `load-tests/drain-bench.sh` on %s UTC; do not edit by hand." %
             datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"),
             "%s. The same %s events drained from the broker into a fresh database by each build in turn, %s runs each, "
             "alternating (the order swapped every round, after one uncounted warm-up run); medians." %
             (label, f"{N_ROWS:,}", os.environ["RUNS"]), "",
             "| | this build | older build | ratio |", "|---|---|---|---|",
             "| drain, events/s | %s (runs %s) | %s (runs %s) | **%.3f** |" % (f"{int(t):,}", spread("T1-trail-drain"),
                                                                   f"{int(t0):,}", spread("T0-trail-drain-before"), t / t0)]
    for key, what, unit in (("cpu_client_s_median", "traild CPU per event", "µs"),
                            ("cpu_pg_s_median", "PostgreSQL CPU per event", "µs"),
                            ("cpu_nats_s_median", "nats-server CPU per event", "µs"),
                            ("wal_bytes_median", "WAL per event", "bytes")):
        a, b = med("T1-trail-drain", key), med("T0-trail-drain-before", key)
        if a and b:
            scale = 1 if unit == "bytes" else 1e6
            lines.append("| %s, %s | %.1f | %.1f | %+.1f |" % (what, unit, a * scale / N_ROWS, b * scale / N_ROWS,
                                                             (a - b) * scale / N_ROWS))
    lines += ["", "Reproduce: `TRAILD_BEFORE=<older traild> LABEL=… N=%d RUNS=%s load-tests/drain-bench.sh`." %
              (N_ROWS, os.environ["RUNS"]), "<!-- drain-bench: end -->"]
    path = os.environ["BENCHMARKS"]
    text = open(path).read()
    b, e = text.find("<!-- drain-bench: begin -->"), text.find("<!-- drain-bench: end -->")
    section = "\n".join(lines)
    if b >= 0 and e > b:
        text = text[:b] + section + text[e + len("<!-- drain-bench: end -->"):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    open(path, "w").write(text)
PY
