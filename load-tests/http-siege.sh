#!/usr/bin/env bash
# The HTTP listener under a siege -> docs/SECURITY.md's measured figures.
#
#   load-tests/http-siege.sh                      1,000 slow-header + 1,000 idle keep-alive connections
#   SLOW=300 IDLE=300 load-tests/http-siege.sh
#   TRAILD=/path/to/other/traild load-tests/http-siege.sh   the same against another build
#
# A fresh stack of its own (under build/siege-stack/), traild serving the
# query API with its default limits, 200 events of tenant acme written
# through the API, then `trail-querybench siege`: SLOW connections that send
# a request header one byte every 2 s and IDLE keep-alive connections are
# held open, spread over client addresses 127.0.0.2… (250 each, under the
# per-address bound), while REQUESTS authenticated GETs of acme's first page
# are timed, each on a new connection, and traild's RSS is sampled. Prints
# the siege's JSON line. Needs a built tree (make build).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/bin
TRAILD=${TRAILD:-$BIN/traild}
SLOW=${SLOW:-1000}
IDLE=${IDLE:-1000}
REQUESTS=${REQUESTS:-200}
# shellcheck source=load-tests/bench-stack.sh
. "$ROOT/load-tests/bench-stack.sh"
bench_stack siege "$TRAILD"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
METRICS=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export TRAIL_HTTP_ADDR=127.0.0.1:$PORT TRAIL_METRICS_ADDR=127.0.0.1:$METRICS
export TRAIL_API_PG_DSN=${OWNER/postgres@/trail_reader@} TRAIL_API_JWT_HS256_SECRET=siege-secret-0123456789abcdef
TRAIL_PG_DSN=${OWNER/postgres@/trail_ingest@} "$TRAILD" --log-level warn run 2>"$WORK/traild.log" &
BENCH_TRAILD_PID=$!
for _ in $(seq 150); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "traild did not become ready; see $WORK/traild.log" >&2; exit 1; }
TOKEN=$("$BIN/traild" dev-token --tenant acme --scopes audit:read,audit:write --subject siege --ttl 1h)
for i in $(seq 200); do
  curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -H "Idempotency-Key: siege-$i" \
    --data '{"tenant_id":"acme","action":"doc.read","actor":{"type":"user","id":"u-1"},"primary_resource":{"type":"doc","id":"d-1"}}' \
    "http://127.0.0.1:$PORT/v1/tenants/acme/events"
done
"$BIN/trail-querybench" siege --port "$PORT" --token "$TOKEN" --tenant acme --slow "$SLOW" --idle "$IDLE" \
  --requests "$REQUESTS" --pid "$BENCH_TRAILD_PID"
