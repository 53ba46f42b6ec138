#!/usr/bin/env bash
# What each index of audit.events costs per row: Trail's own rows (dumped from
# a database traild filled) are COPYed into a fresh, migrated database with
# every index, then with each secondary index dropped in turn, then as a bare
# partitioned heap, and once more with every index from binary COPY (what
# binary COPY would save PostgreSQL). Prints wall time and WAL per row for
# each, median of RUNS.
# One COPY on one connection keeps one backend busy, so its wall time is its
# CPU time. Uses the local stack of `make run` (.dev/).
#
#   load-tests/index-cost.sh SOURCE_DB [RUNS]     # e.g. a database a drain filled
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=${1:?usage: index-cost.sh SOURCE_DB [RUNS]}
RUNS=${2:-3}
# shellcheck disable=SC1091
. "$ROOT/.dev/env"
BASE=${TRAIL_PG_DSN%/*}
ROWS=/tmp/trail-index-cost.copy
COLS=$(psql "$BASE/$SRC" -XAtc "SELECT string_agg(quote_ident(attname), ',' ORDER BY attnum) FROM pg_attribute
  WHERE attrelid = 'audit.events'::regclass AND attnum > 0 AND NOT attisdropped")
psql "$BASE/$SRC" -Xqc "\\copy (SELECT $COLS FROM audit.events) TO '$ROWS'"
psql "$BASE/$SRC" -Xqc "\\copy (SELECT $COLS FROM audit.events) TO '$ROWS.bin' WITH (FORMAT binary)"
N=$(wc -l <"$ROWS")
run_variant() {  # name, SQL run after migrating[, "binary"]
  local name=$1 sql=$2 format=${3:-text} results=() file=$ROWS copy_opts=""
  if [ "$format" = binary ]; then file=$ROWS.bin; copy_opts="WITH (FORMAT binary)"; fi
  for ((i = 0; i < RUNS; i++)); do
    psql "$BASE/postgres" -Xqc "DROP DATABASE IF EXISTS trail_index_cost WITH (FORCE)" -c "CREATE DATABASE trail_index_cost" 2>/dev/null
    TRAIL_PG_DSN=$BASE/trail_index_cost "$ROOT/build/bin/traild" --log-level warn migrate
    [ -n "$sql" ] && psql "$BASE/trail_index_cost" -Xqc "$sql"
    psql "$BASE/trail_index_cost" -Xqc CHECKPOINT
    local lsn0 t0 t1 lsn1
    lsn0=$(psql "$BASE/trail_index_cost" -XAtc "SELECT pg_current_wal_lsn()")
    t0=$(date +%s.%N)
    psql "$BASE/trail_index_cost" -Xqc "\\copy audit.events($COLS) FROM '$file' $copy_opts"
    t1=$(date +%s.%N)
    lsn1=$(psql "$BASE/trail_index_cost" -XAtc "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0')")
    results+=("$(awk -v a="$t0" -v b="$t1" -v w="$lsn1" -v n="$N" 'BEGIN { printf "%.3f %.0f", (b - a) * 1e6 / n, w / n }')")
  done
  printf '%s\n' "${results[@]}" | sort -n | awk -v name="$name" -v runs="$RUNS" \
    '{ r[NR] = $0 } END { split(r[int((runs + 1) / 2)], m, " "); printf "| %s | %.2f | %.0f |\n", name, m[1], m[2] }'
}
echo "$N rows of $SRC, median of $RUNS runs (COPY on one connection)"
echo "| audit.events with | µs/row | WAL bytes/row |"
echo "|---|---|---|"
run_variant "every index" ""
run_variant "every index, binary COPY" "" binary
run_variant "no actor index" "DROP INDEX audit.events_actor_idx"
run_variant "no resource index" "DROP INDEX audit.events_resource_idx"
run_variant "no action index" "DROP INDEX audit.events_action_idx"
run_variant "no tenant + time index" "DROP INDEX audit.events_tenant_time_idx"
run_variant "no index (heap only)" "DROP INDEX audit.events_actor_idx, audit.events_resource_idx, audit.events_action_idx, audit.events_tenant_time_idx"
psql "$BASE/postgres" -Xqc "DROP DATABASE IF EXISTS trail_index_cost WITH (FORCE)"
rm -f "$ROWS" "$ROWS.bin"
