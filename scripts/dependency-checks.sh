#!/usr/bin/env bash
# Checks on the dependency graph that keep the workspace's seams where
# README's Workspace section says they are. Each check prints what it
# guards; the first that fails stops the script.
#   scripts/dependency-checks.sh
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "dependency check failed: $*" >&2
  exit 1
}

# The store knows fresco's error codes, not gRPC: it pulls no tonic.
echo "fresco-store pulls no tonic"
if inverted=$(cargo tree -p fresco-store -e normal -i tonic 2>/dev/null) && [ -n "$inverted" ]; then
  echo "$inverted" >&2
  fail "fresco-store depends on tonic"
fi
if cargo tree -p fresco-store -e normal | grep -q tonic; then
  fail "tonic appears in fresco-store's dependency tree"
fi

echo "dependency checks passed"
