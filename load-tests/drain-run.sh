#!/usr/bin/env bash
# Runs traild until the durable consumer has nothing pending or un-acked, then
# stops it with SIGTERM. Used by drain-bench.sh (timed by the harness's measure.py).
#   drain-run.sh NATSBENCH_BIN          (TRAILD_BIN: another traild binary to run)
set -euo pipefail
NATSBENCH=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"${TRAILD_BIN:-$ROOT/build/bin/traild}" run 2>"${TRAIL_BENCH_LOG:-/dev/null}" &
pid=$!
sleep 0.5
while kill -0 "$pid" 2>/dev/null; do
  if "$NATSBENCH" -s "$TRAIL_NATS_URL" info -c "${TRAIL_NATS_CONSUMER:-trail-ingest}" 2>/dev/null |
      grep -q ' num_pending=0 num_ack_pending=0 '; then
    # Transactions and events per transaction, for the bench's summary.
    if [ -n "${TRAIL_DRAIN_METRICS:-}" ] && [ -n "${TRAIL_METRICS_ADDR:-}" ]; then
      curl -s "http://$TRAIL_METRICS_ADDR/metrics" | grep -E '^trail_(commits_total|transaction_events_(sum|count)) ' \
        >>"$TRAIL_DRAIN_METRICS" || true
    fi
    kill -TERM "$pid"
    wait "$pid"
    exit $?
  fi
  sleep 0.1
done
echo "traild exited before draining" >&2
exit 1
