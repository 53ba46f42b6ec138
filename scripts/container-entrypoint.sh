#!/bin/sh
# The container's entrypoint: traild with the mounted configuration.
#   (no arguments) or "run"   consume and serve (the Deployment)
#   "migrate"                 apply the schema migrations (the Helm hook Job)
#   anything else             passed to traild as is (keygen, verify, …)
# TRAIL_CONFIG names the TOML file (default /etc/trail/trail.toml, the image's
# defaults; the Helm chart mounts its ConfigMap there); TRAIL_* variables
# override single settings (secrets come that way).
set -e
export TRAIL_CONFIG="${TRAIL_CONFIG:-/etc/trail/trail.toml}"
[ $# -eq 0 ] && set -- run
exec /usr/local/bin/traild "$@"
