#!/usr/bin/env bash
# The read side's benchmark -> the "Query API" section of BENCHMARKS.md.
#
#   load-tests/query-bench.sh                  10,000,000 events, 1,000 tenants (Zipf 1.1), 32 daily partitions
#   N=1000000 SECONDS_PER=5 load-tests/query-bench.sh   a quick look
#
# A fresh stack of its own (nats-server + PostgreSQL with config/postgresql.conf,
# under build/query-bench-stack/), the ledger filled through COPY by
# trail-querybench (not through the pipeline: the point is the reads), traild
# serving the query API as trail_reader with the meta-audit on (every read
# publishes its access event, as in production), then 8 keep-alive clients per
# scenario: first page, filtered pages (actor; resource; action + severity),
# deep page (page 100 by its token), catch-up page, single get, diff; and an
# export of the largest tenant beside PostgreSQL's own COPY ... TO of the same
# rows, in the same run. Needs a built tree (make build).
#
# Each scenario runs twice, each time after an uncounted warm-up (every reader
# connection prepares and plans each statement shape once): closed loop, the 8
# clients sending as fast as they are answered (the saturated rate, and the
# latency of a saturated server: 8 requests always queued on 2 cores); then
# open loop at half that rate over the same 8 connections, latency counted
# from each request's due time (the latency a user sees at a sustainable load,
# as the ingest benchmark reports p99 at 50% of the sustained rate).
#
#   TRAILD_BEFORE=/path/to/older/traild N=1000000 SECONDS_PER=5 load-tests/query-bench.sh
#       instead of the table: the same ledger served alternately by this
#       build's traild and the older one, RUNS (3) times each, closed loop,
#       for the first page, a filtered page, a single get and a diff; prints
#       each build's median requests/s and p99 and their ratio (this build
#       over the older one), and writes nothing to BENCHMARKS.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/bin
N=${N:-10000000}
CLIENTS=${CLIENTS:-8}
SECONDS_PER=${SECONDS_PER:-15}
# shared_buffers at a quarter of this machine's 24 GiB, as PostgreSQL's own
# guidance says: "warm cache" then means PostgreSQL's buffers, not reads
# through the kernel's page cache (with the test stack's 256MB, a 13 GB
# ledger made the sparse filtered pages' p99 at half load 34 ms instead of 5).
export PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-6GB}
# shellcheck source=load-tests/bench-stack.sh
. "$ROOT/load-tests/bench-stack.sh"
bench_stack query-bench "$BIN/traild"
psql "$OWNER" -XqAtc "SELECT audit.ensure_partitions(current_date - 33, current_date + 1)" >/dev/null
echo "=== loading $N events through COPY"
"$BIN/trail-querybench" load --dsn "$OWNER" --events "$N" | tee "$WORK/load.json"
# A ledger filled by COPY would otherwise be vacuumed by autovacuum (its
# insert threshold) partition after partition during the measurements; a
# ledger in service has long been vacuumed.
# The same for the checkpoint that would write the gigabytes the load and
# the vacuum dirtied, 15 minutes later, in the middle of the measurements.
echo "=== VACUUM (ANALYZE), CHECKPOINT"
psql "$OWNER" -Xqc "VACUUM (ANALYZE) audit.events, audit.event_ids"
psql "$OWNER" -Xqc "CHECKPOINT"
SIZE=$(psql "$OWNER" -XqAtc "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'audit' AND c.relkind IN ('r', 'i')")
PARTS=$(psql "$OWNER" -XqAtc "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit.events'::regclass")

export TRAIL_API_PG_DSN=${OWNER/postgres@/trail_reader@} TRAIL_API_JWT_HS256_SECRET=query-bench-secret-0123456789
export TRAIL_API_PG_CONNECTIONS=$CLIENTS
start_traild() { # binary
  # New ports each time: a port picked earlier may since have become the
  # source port of some outgoing connection (they share the ephemeral range).
  HTTP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  METRICS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  export TRAIL_HTTP_ADDR=127.0.0.1:$HTTP_PORT TRAIL_METRICS_ADDR=127.0.0.1:$METRICS_PORT
  TRAIL_PG_DSN=${OWNER/postgres@/trail_ingest@} "$1" --log-level warn run 2>>"$WORK/traild.log" &
  BENCH_TRAILD_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null && break; sleep 0.2; done
}
stop_traild() {
  kill "$BENCH_TRAILD_PID" 2>/dev/null && wait "$BENCH_TRAILD_PID" 2>/dev/null || true
  BENCH_TRAILD_PID=
}
start_traild "$BIN/traild"
TOKEN=$("$BIN/traild" dev-token --tenant '*' --scopes audit:read,audit:export --subject query-bench --ttl 2h)

# Every read publishes its access event, which traild then ingests: each
# measurement starts once that backlog is stored, so that none pays for the
# one before it.
settle() {
  for _ in $(seq 240); do
    M=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics")
    echo "$M" | grep -q '^trail_consumer_pending_messages 0$' && echo "$M" | grep -q '^trail_consumer_ack_pending_messages 0$' && return 0
    sleep 0.5
  done
  echo "query-bench: the access events did not settle" >&2
}
: >"$WORK/results.jsonl"
if [ -n "${TRAILD_BEFORE:-}" ]; then
  RUNS=${RUNS:-3}
  stop_traild
  for run in $(seq "$RUNS"); do
    for build in this before; do
      if [ "$build" = this ]; then start_traild "$BIN/traild"; else start_traild "$TRAILD_BEFORE"; fi
      for scenario in first actor get diff; do
        settle
        "$BIN/trail-querybench" run --dsn "$OWNER" --port "$HTTP_PORT" --token "$TOKEN" --scenario "$scenario" \
          --clients "$CLIENTS" --seconds "$SECONDS_PER" |
          python3 -c 'import json,sys; r=json.load(sys.stdin); r["build"]=sys.argv[1]; r["run"]=int(sys.argv[2]); print(json.dumps(r))' \
            "$build" "$run" | tee -a "$WORK/results.jsonl"
      done
      stop_traild
    done
  done
  python3 - "$WORK/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| request | this build req/s | older req/s | ratio | this p99 ms | older p99 ms |")
print("|---|---|---|---|---|---|")
for k in ["first", "actor", "get", "diff"]:
    a = [r for r in rows if r["scenario"] == k and r["build"] == "this"]
    b = [r for r in rows if r["scenario"] == k and r["build"] == "before"]
    ra, rb = statistics.median(r["rps"] for r in a), statistics.median(r["rps"] for r in b)
    pa, pb = statistics.median(r["p99_ms"] for r in a), statistics.median(r["p99_ms"] for r in b)
    print("| %s | %d | %d | %.3f | %.2f | %.2f |" % (k, ra, rb, ra / rb, pa, pb))
PY
  exit 0
fi
for scenario in first actor resource action_severity deep catchup get diff; do
  settle
  echo "=== $scenario: $CLIENTS clients, $SECONDS_PER s, closed loop"
  "$BIN/trail-querybench" run --dsn "$OWNER" --port "$HTTP_PORT" --token "$TOKEN" --scenario "$scenario" \
    --clients "$CLIENTS" --seconds "$SECONDS_PER" | tee -a "$WORK/results.jsonl"
  RATE=$(tail -1 "$WORK/results.jsonl" | python3 -c 'import json,sys; print(max(1, int(json.load(sys.stdin)["rps"] / 2)))')
  settle
  echo "=== $scenario: $CLIENTS clients, $SECONDS_PER s, open loop at $RATE requests/s"
  "$BIN/trail-querybench" run --dsn "$OWNER" --port "$HTTP_PORT" --token "$TOKEN" --scenario "$scenario" \
    --clients "$CLIENTS" --seconds "$SECONDS_PER" --rate "$RATE" | tee -a "$WORK/results.jsonl"
done

# Export of the largest tenant, then PostgreSQL's own COPY ... TO of the same rows.
BIG=$(psql "$OWNER" -XqAtc "SELECT tenant_id FROM audit.tenant_heads ORDER BY last_sequence DESC LIMIT 1")
ROWS=$(psql "$OWNER" -XqAtc "SELECT count(*) FROM audit.events WHERE tenant_id = '$BIG'")
echo "=== export of $BIG ($ROWS rows)"
settle
# Both read the same rows from a warm cache (one untimed pass first), then
# alternate three times; the medians are compared (single passes on this
# machine differ by up to 40%).
RAW_SQL="\\copy (SELECT * FROM audit.events WHERE tenant_id = '$BIG' ORDER BY occurred_at, sequence) TO '/dev/null' WITH (FORMAT csv)"
psql "$OWNER" -Xqc "$RAW_SQL"
: >"$WORK/export-times"
for _ in 1 2 3; do
  E=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$HTTP_PORT/v1/tenants/$BIG/export?format=csv&source_service=%2F%2Fqb%2Fservice")
  T0=$(date +%s.%N)
  psql "$OWNER" -Xqc "$RAW_SQL"
  R=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  echo "$E $R" >>"$WORK/export-times"
done
EXPORT_S=$(awk '{ print $1 }' "$WORK/export-times" | sort -g | sed -n 2p)
RAW_S=$(awk '{ print $2 }' "$WORK/export-times" | sort -g | sed -n 2p)
echo "{\"export_rows\": $ROWS, \"export_s\": $EXPORT_S, \"raw_copy_s\": $RAW_S}" | tee "$WORK/export.json"

python3 - "$WORK" "$ROOT/BENCHMARKS.md" "$N" "$CLIENTS" "$SECONDS_PER" "$SIZE" "$PARTS" "$PG_SHARED_BUFFERS" <<'PY'
import json, sys, datetime
work, path, n, clients, secs, size, parts, buffers = sys.argv[1:9]
rows = [json.loads(l) for l in open(work + "/results.jsonl") if l.strip()]
ex = json.load(open(work + "/export.json"))
names = {"first": "first page", "actor": "filtered page: actor", "resource": "filtered page: resource",
         "action_severity": "filtered page: action + severity", "deep": "deep page (page 100, by token)",
         "catchup": "catch-up page (after_sequence, asc)", "get": "single get", "diff": "diff"}
by = {r["scenario"]: r for r in rows if not r.get("rate")}
half = {r["scenario"]: r for r in rows if r.get("rate")}
out = ["<!-- query-bench: begin -->", "## Query API", "",
       "Generated by `load-tests/query-bench.sh` on %s UTC; do not edit by hand." % datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"),
       "Ledger: %s events, 1,000 tenants (Zipf 1.1), %s partitions, %s on disk (tables and indexes), loaded through COPY;" % (f"{int(n):,}", parts, size),
       "PostgreSQL with `shared_buffers` = %s; traild serves the API as `trail_reader` under row-level security, with the meta-audit on (each read publishes its access event first)." % buffers,
       "%s keep-alive clients per scenario, pages of 50, tenants drawn from the 50 largest, warm cache (an uncounted warm-up first)." % clients,
       "**Saturated**: closed loop, %s s, each client sends when answered: 8 requests always queued on the 2 cores that the clients, traild, PostgreSQL and nats-server share." % secs,
       "**At 50%%**: open loop at half the saturated rate over the same %s connections, %s s, latency counted from each request's due time. Target: p99 < 10 ms." % (clients, secs), "",
       "| request | saturated req/s | saturated p50 ms | saturated p99 ms | at 50%: req/s | p50 ms | p90 ms | p99 ms | errors |",
       "|---|---|---|---|---|---|---|---|---|"]
for k in ["first", "actor", "resource", "action_severity", "deep", "catchup", "get", "diff"]:
    r, h = by.get(k), half.get(k)
    if r and h:
        out.append("| %s | %s | %.2f | %.2f | %s | %.2f | %.2f | **%.2f** | %d |" % (
            names[k], f"{int(r['rps']):,}", r["p50_ms"], r["p99_ms"], f"{int(h['rps']):,}", h["p50_ms"], h["p90_ms"], h["p99_ms"],
            r["errors"] + h["errors"]))
if "deep" in by and "first" in by:
    out += ["", "Deep page ÷ first page: saturated rate **%.2f**, p50 at 50%% **%.2f**." % (
        by["deep"]["rps"] / by["first"]["rps"], half["deep"]["p50_ms"] / half["first"]["p50_ms"])]
e_rate = ex["export_rows"] / float(ex["export_s"])
raw_rate = ex["export_rows"] / float(ex["raw_copy_s"])
out += ["", "Export of the largest tenant (%s rows, CSV; medians of 3 alternating passes): **%s rows/s**, PostgreSQL's own `COPY (SELECT …) TO` of the same rows %s rows/s: **%.2f** of it." %
        (f"{ex['export_rows']:,}", f"{int(e_rate):,}", f"{int(raw_rate):,}", e_rate / raw_rate), "",
        "Reproduce: `load-tests/query-bench.sh` (about 20 minutes); raw results in `build/query-bench-work/`.",
        "<!-- query-bench: end -->"]
text = open(path).read()
b, e = text.find("<!-- query-bench: begin -->"), text.find("<!-- query-bench: end -->")
section = "\n".join(out)
if b >= 0 and e > b:
    text = text[:b] + section + text[e + len("<!-- query-bench: end -->"):]
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
print("\n".join(out))
PY
