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
# The read side: queries as the trail_reader role (row-level security), bearer
# tokens signed with a dev secret kept in .dev/ (made once, never committed).
[ -s .dev/api-secret ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >.dev/api-secret
export TRAIL_API_PG_DSN=${TRAIL_API_PG_DSN:-${TRAIL_PG_DSN/postgres@/trail_reader@}}
export TRAIL_API_JWT_HS256_SECRET=${TRAIL_API_JWT_HS256_SECRET:-$(cat .dev/api-secret)}
# Tamper evidence: a dev checkpoint signing key, made once under .dev/.
[ -s .dev/checkpoint-key ] || build/bin/traild keygen --name trail.dev/audit --out .dev/checkpoint-key >/dev/null
export TRAIL_INTEGRITY_SIGNING_KEY_FILE=${TRAIL_INTEGRITY_SIGNING_KEY_FILE:-$ROOT/.dev/checkpoint-key}
build/bin/traild --config config/trail.toml migrate
TOKEN=$(build/bin/traild --config config/trail.toml dev-token --tenant acme --scopes audit:read,audit:export --subject dev --ttl 12h)
WRITE_TOKEN=$(build/bin/traild --config config/trail.toml dev-token --tenant acme --scopes audit:write --subject dev-writer --ttl 12h)
VIEWER_TOKEN=$(build/bin/traild --config config/trail.toml dev-token --tenant acme --scopes audit:read,audit:export --subject dev-viewer --ttl 1h)
cat <<MSG

  Trail is starting: NATS $TRAIL_NATS_URL, PostgreSQL $TRAIL_PG_DSN
  HTTP  http://127.0.0.1:8080/readyz    metrics http://127.0.0.1:9464/metrics

  In another shell, send a first event:

    build/bin/trailctl send '{"tenant_id":"acme","action":"user.role.updated","actor":{"type":"user","id":"u-1"},"primary_resource":{"type":"user","id":"u-2"},"changes":{"old_value":{"role":"viewer"},"new_value":{"role":"admin"}}}'

  and read it back (dev tokens for tenant acme, valid 12 h: TOKEN reads and
  exports, WRITE_TOKEN writes synchronously; README "Reading the log" uses both):

    TOKEN=$TOKEN
    WRITE_TOKEN=$WRITE_TOKEN
    curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:8080/v1/tenants/acme/events
    curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:8080/v1/tenants/acme/verify?against=broker

  or open the viewer (a dev token for acme in the link, valid 1 h; the page keeps it in memory only):

    http://127.0.0.1:8080/ui/#token=$VIEWER_TOKEN

  or from a terminal: TRAIL_TENANT=acme TRAIL_TOKEN=\$TOKEN build/bin/trailctl query (tail, export, dlq, …);
  AI agents: MCP at http://127.0.0.1:8080/mcp with that token (README "MCP: Trail for AI agents").

  Make others with: TRAIL_API_JWT_HS256_SECRET=\$(cat .dev/api-secret) build/bin/traild dev-token --tenant acme --scopes audit:read

  Ctrl-C stops traild; \`make stop\` stops NATS and PostgreSQL (.dev/ keeps their data).

MSG
# Migrations ran as the owner (postgres); the service writes as trail_ingest.
export TRAIL_PG_DSN=${TRAIL_PG_DSN/postgres@/trail_ingest@}
exec build/bin/traild --config config/trail.toml run
