#!/usr/bin/env bash
# Trail's reproducible benchmark -> BENCHMARKS.md and docs/benchmark-ramp.png.
#
#   load-tests/bench.sh                  N=1000000 events, 3 runs per figure (about 20 min on 2 cores)
#   N=300000 RUNS=1 load-tests/bench.sh  a quick look
#   load-tests/bench.sh --report build/bench-work/results/<stamp>/trail.json   re-renders BENCHMARKS.md from a sitting
#
# One sitting, one stack (the shared harness's nats-server + PostgreSQL, fsync
# on): JetStream publish and pull ceilings, COPY ceilings on Trail's own table,
# Trail's drain, sustained rate and latency, and the Node.js reference peer.
# Needs a built tree (make build), ../shared/bench beside the project, node and
# npm for the peer, python3. The orchestration is load-tests/bench.py.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$ROOT/build/bin/traild" ] || { echo "bench.sh: build first: make build" >&2; exit 1; }
command -v npm >/dev/null || { echo "bench.sh: the reference peer needs node and npm" >&2; exit 1; }
exec python3 "$ROOT/load-tests/bench.py" "$@"
