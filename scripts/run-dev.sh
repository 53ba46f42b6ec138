#!/usr/bin/env bash
# `make run`: migrates the dev database and runs traild in the foreground
# against the stack that scripts/stack.sh started under .dev/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
set -a
# shellcheck disable=SC1091
. .dev/env
set +a
export TRAIL_LOG_FORMAT=${TRAIL_LOG_FORMAT:-text}
build/bin/traild --config config/trail.toml migrate
cat <<MSG

  Trail is starting: NATS $TRAIL_NATS_URL, PostgreSQL $TRAIL_PG_DSN
  HTTP  http://127.0.0.1:8080/readyz    metrics http://127.0.0.1:9464/metrics

  In another shell, send a first event:

    build/bin/trail-send '{"tenant_id":"acme","action":"user.role.updated","actor":{"type":"user","id":"u-1"},"primary_resource":{"type":"user","id":"u-2"},"changes":{"old_value":{"role":"viewer"},"new_value":{"role":"admin"}}}'

  and see it stored:

    psql "$TRAIL_PG_DSN" -c 'SELECT tenant_id, sequence, action, changes FROM audit.events'

  Ctrl-C stops traild; \`make stop\` stops NATS and PostgreSQL (.dev/ keeps their data).

MSG
exec build/bin/traild --config config/trail.toml run
