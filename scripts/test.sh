#!/usr/bin/env bash
# fresco's test command: checks the deployment files offline (Kubernetes
# manifests, KEDA objects, docker-compose.yml; and that broken copies of
# them are refused), installs and starts what the tests need (Postgres,
# Redis, an S3-compatible server) when missing, checks the dependency
# graph, builds the binaries, runs the whole suite, and stops the services
# again.
#   scripts/test.sh [extra nextest/cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
export FRESCO_SERVICES_DIR="${FRESCO_SERVICES_DIR:-$(pwd)/.services/test}"
# One build from scratch (CI's case) gains nothing from incremental
# compilation and would keep gigabytes of its state on disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

scripts/validate-manifests.sh
scripts/validate-manifests.sh --self-test
scripts/dependency-checks.sh

scripts/services.sh start
trap 'scripts/services.sh stop' EXIT
# shellcheck disable=SC1091
source "$FRESCO_SERVICES_DIR/env"
# The worker pools' KEDA queries, run against the migrated schema.
scripts/validate-manifests.sh --queries "$FRESCO_TEST_DATABASE_URL"

cargo build --workspace --bins --locked
# The `cuda` build where a CUDA toolkit is present (nvcc on PATH, e.g. after
# `source .cuda/env`): compiled and linked, so it keeps building; nothing runs on a GPU here.
if command -v nvcc >/dev/null 2>&1; then
  cargo build -p fresco-worker --features cuda --locked
fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
