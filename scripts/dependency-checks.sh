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

# `lacks WHAT PATTERN CARGO_TREE_ARGS...`: the tree those arguments print
# has no line matching PATTERN.
lacks() {
  local what=$1 pattern=$2
  shift 2
  echo "$what"
  local tree
  tree=$(cargo tree "$@") || fail "cargo tree $* did not run"
  [ -n "$tree" ] || fail "cargo tree $* printed nothing"
  if grep -E "$pattern" <<<"$tree" >&2; then
    fail "$what (cargo tree $*)"
  fi
}

lacks "the CLI without its dev feature pulls no candle" \
  'candle' -p fresco-cli --no-default-features -e normal
lacks "the coordinator pulls no candle" \
  'candle' -p fresco-coordinator -e normal
lacks "the model contract and its families pull no gRPC (tonic)" \
  'tonic' -p fresco-pipeline -p fresco-dit -p fresco-diffusers -e normal
lacks "the diffusers-format families do not depend on fresco's DiT" \
  'fresco-dit' -p fresco-diffusers -e normal
lacks "the worker does not carry the DiT's training code (feature train)" \
  'fresco-dit feature "train"' -p fresco-worker -e features

lacks "TLS is rustls: the binaries pull no OpenSSL" \
  'openssl-sys|native-tls' -p fresco-coordinator -p fresco-worker -p fresco-cli -e normal

echo "dependency checks passed"
