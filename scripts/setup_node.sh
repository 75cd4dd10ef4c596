#!/usr/bin/env bash
# Node packages the server tests drive against `llmrelay serve` on loopback
# (tests/server/test_node_clients.py): @anthropic-ai/sdk and the Vercel AI SDK
# (ai, @ai-sdk/openai), pinned by tests/node/package-lock.json, from the npm registry.
# Installs into tests/node/node_modules with `npm ci` when the lock file changed since the
# last install. Without node/npm it says so and exits 0 (those tests are then skipped).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
dir="$here/tests/node"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup_node: node/npm not available; the Node SDK tests will be skipped" >&2
  exit 0
fi
stamp="$dir/node_modules/.llmrelay-lock"
if [ -f "$stamp" ] && cmp -s "$stamp" "$dir/package-lock.json"; then
  echo "setup_node: tests/node packages up to date (node $(node --version))"
  exit 0
fi
echo "setup_node: npm ci in tests/node (node $(node --version))"
if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error); then
  cp "$dir/package-lock.json" "$stamp"
else
  echo "setup_node: npm ci failed; the Node SDK tests will be skipped" >&2
fi
exit 0
