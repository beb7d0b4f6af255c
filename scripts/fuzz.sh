#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets) for a bounded time and fails on
# the first crash; a crashing input is left in fuzz/artifacts/<target>/.
# Installs cargo-fuzz when missing.
#   scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(prompts_file submit_request)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo-fuzz passes compiler flags that are unstable; RUSTC_BOOTSTRAP lets
# the stable toolchain accept them. No sanitizer: the code forbids unsafe,
# so the fuzzers look for panics and broken invariants.
export RUSTC_BOOTSTRAP=1
for target in "${targets[@]}"; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  seeds=()
  [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
  echo "[fuzz] $target for ${seconds}s"
  cargo fuzz run --sanitizer none "$target" "$corpus" "${seeds[@]}" -- \
    -max_total_time="$seconds" -max_len=65536 -print_final_stats=1
done
echo "[fuzz] no crash in ${#targets[@]} target(s)"
