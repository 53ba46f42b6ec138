#!/usr/bin/env bash
# What the per-transaction tenant-head statements cost: in a scratch copy of
# audit.tenant_heads with TENANTS rows, the writer's two statements for a
# transaction touching K tenants (lock them in tenant order, then advance
# them), median of RUNS, and the cost per event at EVENTS events per
# transaction (a drain's transactions hold ~780 events over ~300 tenants).
#
#   load-tests/heads-cost.sh DSN [TENANTS=1000] [K=300] [EVENTS=780] [RUNS=7]
set -euo pipefail
DSN=${1:?usage: heads-cost.sh DSN [TENANTS] [K] [EVENTS] [RUNS]}
TENANTS=${2:-1000}; K=${3:-300}; EVENTS=${4:-780}; RUNS=${5:-7}
q() { psql -XAtqd "$DSN" -v ON_ERROR_STOP=1 "$@"; }
q -c "DROP TABLE IF EXISTS heads_cost" \
  -c "CREATE TABLE heads_cost (tenant_id text PRIMARY KEY, last_sequence bigint NOT NULL DEFAULT 0, updated_at timestamptz)" \
  -c "INSERT INTO heads_cost (tenant_id) SELECT 'tenant-' || lpad(i::text, 6, '0') FROM generate_series(1, $TENANTS) i" \
  -c "VACUUM ANALYZE heads_cost"
# One session, as a writer's: the first transaction warms its caches and is not counted.
script=$(mktemp)
trap 'rm -f "$script"' EXIT
for ((r = 0; r <= RUNS; r++)); do
  # The K tenants of this "transaction", as the writer passes them: a sorted text array.
  arr=$(q -c "SELECT '{' || string_agg(tenant_id, ',' ORDER BY tenant_id) || '}' FROM (SELECT tenant_id FROM heads_cost ORDER BY random() LIMIT $K) x")
  cat >>"$script" <<SQL
BEGIN;
\\timing on
SELECT count(*) FROM (SELECT tenant_id, last_sequence FROM heads_cost WHERE tenant_id = ANY('$arr'::text[]) ORDER BY tenant_id FOR UPDATE) l;
UPDATE heads_cost h SET last_sequence = h.last_sequence + 3, updated_at = now() FROM unnest('$arr'::text[]) AS v(t) WHERE h.tenant_id = v.t;
\\timing off
COMMIT;
\\echo END
SQL
done
mapfile -t times < <(psql -XAtqd "$DSN" -v ON_ERROR_STOP=1 -f "$script" 2>&1 | python3 -c "
import re, sys
total, out = 0.0, []
for line in sys.stdin:
    m = re.match(r'Time: ([0-9.]+) ms', line)
    if m: total += float(m.group(1))
    elif line.strip() == 'END': out.append(total); total = 0.0
print('\n'.join(str(t) for t in out[1:]))")
python3 - "$K" "$EVENTS" "${times[@]}" <<'PY'
import statistics, sys
k, events, times = int(sys.argv[1]), int(sys.argv[2]), [float(t) for t in sys.argv[3:]]
m = statistics.median(times)
print("lock + advance %d tenant heads: %.2f ms per transaction (median of %d) = %.1f us per head, %.2f us per event at %d events per transaction"
      % (k, m, len(times), m * 1000 / k, m * 1000 / events, events))
PY
q -c "DROP TABLE heads_cost"
