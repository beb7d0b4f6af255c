#!/usr/bin/env bash
# Checks fresco's deployment files offline (scripts/validate_manifests.py
# says what exactly): renders every kustomization under deploy/kubernetes,
# validates each object against the Kubernetes 1.30 schemas and the
# vendored KEDA CRDs, checks references between them, and checks
# docker-compose.yml's structure. Installs what it needs from PyPI when
# missing. Quiet on success; names each file and problem otherwise.
#   scripts/validate-manifests.sh               # check the files
#   scripts/validate-manifests.sh --self-test   # prove broken copies fail
#   scripts/validate-manifests.sh --queries postgres://user@host/db
#       # run the pools' KEDA queries on a scratch database made there
set -euo pipefail
cd "$(dirname "$0")/.."
kubernetes_validate_version=1.37.0

if ! python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("kubernetes-validate") != sys.argv[1])' \
    "$kubernetes_validate_version" >/dev/null 2>&1; then
  echo "[validate-manifests] installing kubernetes-validate $kubernetes_validate_version" >&2
  pkg="kubernetes-validate==$kubernetes_validate_version"
  python3 -m pip install --quiet "$pkg" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "$pkg"
fi
exec python3 scripts/validate_manifests.py "$@"
