#!/usr/bin/env bash
# The Helm chart under the real tools (scripts/tools.sh fetches them):
#   helm lint --strict with the default and the production-like values;
#   helm template of both, every object validated against the Kubernetes
#   schemas and Trail's own requirements (tests/helm/validate.mjs);
#   yamllint on the chart's YAML and on what it renders;
#   values.schema.json refusing bad values.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHART=$ROOT/helm/trail
TOOLS=${TOOLS:-$ROOT/build/tools}
OUT=${OUT:-$ROOT/build/helm-test}
"$ROOT/scripts/tools.sh"
export TRAIL_TOOLS_NODE=$TOOLS/node
HELM=$TOOLS/helm
mkdir -p "$OUT"
fail=0
problem() { echo "PROBLEM: $*"; fail=1; }

yamllint -d '{extends: default, rules: {line-length: {max: 140}, document-start: disable, comments: {min-spaces-from-content: 1}}}' \
  "$CHART/Chart.yaml" "$CHART/values.yaml" "$CHART"/ci/*.yaml || problem "yamllint: the chart's YAML"

for values in "$CHART"/ci/*.yaml; do
  name=$(basename "$values" .yaml)
  "$HELM" lint --strict "$CHART" -f "$values" >"$OUT/lint-$name.txt" 2>&1 || { cat "$OUT/lint-$name.txt"; problem "helm lint --strict ($name)"; }
  "$HELM" template trail "$CHART" -f "$values" --namespace audit >"$OUT/$name.yaml" 2>"$OUT/template-$name.err" ||
    { cat "$OUT/template-$name.err"; problem "helm template ($name)"; continue; }
  yamllint -d '{extends: default, rules: {line-length: disable, document-start: disable, comments: disable, comments-indentation: disable, indentation: {indent-sequences: whatever}}}' \
    "$OUT/$name.yaml" || problem "yamllint: the rendered objects ($name)"
  deadline=$("$HELM" template trail "$CHART" -f "$values" --show-only templates/configmap.yaml |
             sed -n 's/^ *deadline_s = \([0-9]*\)$/\1/p')
  node "$ROOT/tests/helm/validate.mjs" "$OUT/$name.yaml" "${deadline:-25}" || problem "validation ($name)"
  # The trail.toml the ConfigMap carries is one traild accepts.
  python3 - "$OUT/$name.yaml" "$OUT/trail-$name.toml" <<'PY'
import sys
text = open(sys.argv[1]).read()
doc = text[text.index("  trail.toml: |"):].split("\n")[1:]
lines = []
for line in doc:
    if line.startswith("    "): lines.append(line[4:])
    elif line.strip() == "": lines.append("")
    else: break
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
  if [ -x "$ROOT/build/bin/traild" ]; then
    env -i PATH="$PATH" "$ROOT/build/bin/traild" --config "$OUT/trail-$name.toml" config show >"$OUT/config-$name.txt" 2>&1 ||
      { cat "$OUT/config-$name.txt"; problem "traild refuses the rendered trail.toml ($name)"; }
  fi
done

# Bad values are refused before anything renders.
refuse() {  # why, then helm arguments
  local why=$1
  shift
  if "$HELM" template trail "$CHART" -f "$CHART/ci/default-values.yaml" "$@" >/dev/null 2>"$OUT/refused.err"; then
    problem "accepted: $why ($*)"
  else
    echo "refused: $why: $(grep -m1 -e '^- at' -e 'required' "$OUT/refused.err" | sed 's/^- //' | head -c 160)"
  fi
}
refuse "no replica" --set replicaCount=0
refuse "a NATS URL that is not nats://" --set nats.url=http://nats:4222
refuse "a writable root filesystem" --set securityContext.readOnlyRootFilesystem=false
refuse "an unknown setting" --set replicas=3
refuse "no ingest DSN" --set secrets.create.ingestDsn=
refuse "a malformed tenant retention" --set retention.tenantDays=acme
refuse "retention without an archive volume" --set retention.days=30
refuse "an existing Secret without the ingest DSN" --set secrets.existingSecret=s --set 'secrets.existingSecretKeys={readerDsn}'
if [ $fail -eq 0 ]; then echo "chart_test: passed"; else echo "chart_test: FAILED"; fi
exit $fail
