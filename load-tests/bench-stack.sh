# Sourced by the benchmarks that need a stack of their own (query-bench.sh,
# http-siege.sh): `bench_stack NAME TRAILD` starts nats-server and PostgreSQL
# fresh under build/NAME-stack/ (state from any earlier run swept away),
# empties build/NAME-work/ ($WORK), exports the stack's settings, sets
# $OWNER (the schema owner's DSN) and migrates with TRAILD. On exit the
# traild in $BENCH_TRAILD_PID (if any) is stopped and the stack destroyed.
bench_stack() {
  export STACK_DIR=$ROOT/build/$1-stack NATS_PORT=0 NATS_MON_PORT=0 PG_PORT=0
  WORK=$ROOT/build/$1-work
  rm -rf "$WORK" && mkdir -p "$WORK"
  "$ROOT/scripts/stack.sh" fresh >"$WORK/stack.log" 2>&1
  trap bench_stack_cleanup EXIT
  set -a
  # shellcheck disable=SC1091
  . "$STACK_DIR/env"
  set +a
  OWNER=$TRAIL_PG_DSN
  "$2" --log-level warn migrate
}

bench_stack_cleanup() {
  [ -n "${BENCH_TRAILD_PID:-}" ] && kill "$BENCH_TRAILD_PID" 2>/dev/null && wait "$BENCH_TRAILD_PID" 2>/dev/null || true
  "$ROOT/scripts/stack.sh" destroy >/dev/null 2>&1 || true
}
