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
# `cargo tree -i` names every path to tonic, or says tonic is not there.
echo "fresco-store pulls no tonic"
if inverted=$(cargo tree -p fresco-store -e normal -i tonic 2>&1); then
  echo "$inverted" >&2
  fail "fresco-store depends on tonic"
elif ! grep -q "did not match any packages" <<<"$inverted"; then
  echo "$inverted" >&2
  fail "cargo tree -p fresco-store -i tonic did not run"
fi
tree=$(cargo tree -p fresco-store -e normal)
if grep -q tonic <<<"$tree"; then
  fail "tonic appears in fresco-store's dependency tree"
fi

echo "dependency checks passed"
