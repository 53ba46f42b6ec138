#!/usr/bin/env bash
# What the identity table costs per row, by key design: COPYs the same N
# identities (1,000 tenants with Zipf skew, UUID ids, realistic sources) into
# audit.event_ids as Trail ships it and into candidate designs, one COPY on one
# connection each (wall time = one backend's CPU), median of RUNS.
#
#   load-tests/identity-cost.sh DSN [N] [RUNS]       (a scratch database: tables are created and dropped)
set -euo pipefail
DSN=${1:?usage: identity-cost.sh DSN [N] [RUNS]}
N=${2:-300000}
RUNS=${3:-3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
q() { psql -XAtqd "$DSN" -v ON_ERROR_STOP=1 "$@"; }
# The identities, as the writer would COPY them (tenant, source, id, sequence, occurred_at, digest).
q -c "COPY (
  WITH g AS (SELECT i, 'tenant-' || lpad((floor(1000 * power(random(), 3)))::int::text, 4, '0') AS t,
                    '//billing.example.com/svc-' || (i % 17) AS s, gen_random_uuid()::text AS id FROM generate_series(1, $N) i)
  SELECT t, s, id, row_number() OVER (PARTITION BY t ORDER BY i), now() + i * interval '1 ms',
         encode(substring(sha256(convert_to(octet_length(s)::text || ':' || s || id, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid
  FROM g ORDER BY i) TO STDOUT" >"$WORK/ids.copy"
designs=(
  "shipped|tenant_id text, ce_source text, ce_id text, sequence bigint, occurred_at timestamptz, digest uuid, PRIMARY KEY (tenant_id, ce_source, ce_id), UNIQUE (tenant_id, sequence)"
  "digest key|tenant_id text, ce_source text, ce_id text, sequence bigint, occurred_at timestamptz, digest uuid, PRIMARY KEY (tenant_id, digest), UNIQUE (tenant_id, sequence)"
  "digest key, no sequence index|tenant_id text, ce_source text, ce_id text, sequence bigint, occurred_at timestamptz, digest uuid, PRIMARY KEY (tenant_id, digest)"
  "text key, no sequence index|tenant_id text, ce_source text, ce_id text, sequence bigint, occurred_at timestamptz, digest uuid, PRIMARY KEY (tenant_id, ce_source, ce_id)"
  "heap only|tenant_id text, ce_source text, ce_id text, sequence bigint, occurred_at timestamptz, digest uuid"
)
printf '| event_ids design | µs/row | WAL bytes/row |\n|---|---|---|\n'
for d in "${designs[@]}"; do
  name=${d%%|*}; cols=${d#*|}
  times=(); wals=()
  for ((r = 1; r <= RUNS; r++)); do
    q -c "DROP TABLE IF EXISTS idcost" -c "CREATE TABLE idcost ($cols)" -c "CHECKPOINT"
    out=$(q -c "SELECT pg_current_wal_lsn()" -c "\\timing on" -c "\\copy idcost FROM '$WORK/ids.copy'" -c "\\timing off" \
          -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$(q -c 'SELECT pg_current_wal_lsn()')')" 2>&1)
    ms=$(printf '%s\n' "$out" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
    wal=$(printf '%s\n' "$out" | tail -1)
    times+=("$ms"); wals+=("$wal")
  done
  python3 - "$name" "$N" "${times[*]}" "${wals[*]}" <<'PY'
import statistics, sys
name, n, times, wals = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
print("| %s | %.2f | %.0f |" % (name, statistics.median(float(t) for t in times) * 1000 / n,
                                 statistics.median(abs(float(w)) for w in wals) / n))
PY
done
q -c "DROP TABLE IF EXISTS idcost"
