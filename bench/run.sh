#!/usr/bin/env bash
# Benchmarks fresco-diffusers against diffusers on PyTorch, both on the CPU in float32, on the
# same model folders in the same run, and prints the ratios (see bench/README.md).
#
#   bench/run.sh [--threads N] [--steps N] [--models "tiny-sd tiny-sdxl mid"] [--dev]
#                [--kernels]
#
# Models: tiny-sd and tiny-sdxl (the test folders), mid (an SD-1.5-shaped folder at about a
# sixth of its widths, 256x256) and sd15 (SD 1.5's own sizes at 512x512, about 4 GB written
# once to bench/out/sd15; its pipeline runs 2 steps whatever --steps says). --kernels also
# times each fresco-kernels kernel against the candle op it replaces (fresco-kernels-bench).
#
# Steps: a Python venv in bench/.venv (made and filled once: torch's CPU wheel index when
# it answers, else plain PyPI torch; diffusers, transformers, safetensors, accelerate);
# `cargo build --release --bin fresco-diffusers-bench` (or the dev profile with --dev, which
# builds dependencies at opt-level 3 but fresco-diffusers itself unoptimised); the mid-size
# random-weight folder written once to bench/out/mid; then, per model, fresco-diffusers-bench and
# diffusers_bench.py one after the other with the same thread count, size and steps.
# Results go to bench/out/results-<UTC time>.jsonl and the table to standard output.
#
# Environment: CARGO_TARGET_DIR is honoured; FRESCO_BENCH_BIN skips the build and uses
# that binary.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
threads=2
steps=10
models="tiny-sd tiny-sdxl mid"
profile=release
kernels=0
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) threads="$2"; shift 2 ;;
        --steps) steps="$2"; shift 2 ;;
        --models) models="$2"; shift 2 ;;
        --dev) profile=dev; shift ;;
        --kernels) kernels=1; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

venv="$here/.venv"
py="$venv/bin/python"
if [ ! -x "$py" ]; then
    python3 -m venv "$venv"
fi
if ! "$py" -c "import torch, diffusers, transformers, safetensors, accelerate" 2>/dev/null; then
    if "$py" -c "import urllib.request as u; u.urlopen('https://download.pytorch.org/whl/cpu/torch/', timeout=10)" 2>/dev/null; then
        "$py" -m pip install torch --index-url https://download.pytorch.org/whl/cpu
    else
        echo "run.sh: the CPU wheel index does not answer; installing torch from PyPI" >&2
        "$py" -m pip install torch
    fi
    "$py" -m pip install diffusers transformers safetensors accelerate
fi

if [ -n "${FRESCO_BENCH_BIN:-}" ]; then
    bin="$FRESCO_BENCH_BIN"
else
    target="${CARGO_TARGET_DIR:-$root/target}"
    if [ "$profile" = release ]; then
        (cd "$root" && cargo build --release -p fresco-diffusers-bench --bin fresco-diffusers-bench)
        bin="$target/release/fresco-diffusers-bench"
    else
        (cd "$root" && cargo build -p fresco-diffusers-bench --bin fresco-diffusers-bench)
        bin="$target/debug/fresco-diffusers-bench"
    fi
fi

out="$here/out"
mkdir -p "$out"
results="$out/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
data="$root/crates/fresco-diffusers/tests/data"

# The same thread count for both: candle reads CANDLE_NUM_THREADS / RAYON_NUM_THREADS,
# PyTorch gets torch.set_num_threads (and the OpenMP/MKL variables).
export CANDLE_NUM_THREADS="$threads" RAYON_NUM_THREADS="$threads"
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"

{
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -srm), $(nproc) CPUs, threads $threads"
    echo "# uptime: $(uptime)"
} | tee -a "$results" >&2

for model in $models; do
    model_steps="$steps"
    case "$model" in
        tiny-sd|tiny-sdxl)
            folder="$data/$model"; config=()
            # Milliseconds per call: many repetitions.
            reps=(--warmup 3 --reps 50 --pipeline-reps 10) ;;
        mid)
            folder="$out/mid"; config=(--config mid)
            "$bin" --config mid --out "$folder" --generate-only | tee -a "$results"
            reps=(--warmup 1 --reps 5 --pipeline-reps 2) ;;
        sd15)
            folder="$out/sd15"; config=(--config sd15)
            "$bin" --config sd15 --out "$folder" --generate-only | tee -a "$results"
            reps=(--warmup 1 --reps 3 --pipeline-reps 1)
            model_steps=2 ;;
        *) echo "unknown model: $model (tiny-sd, tiny-sdxl, mid, sd15)" >&2; exit 2 ;;
    esac
    echo "run.sh: $model: fresco-diffusers" >&2
    "$bin" "$folder" --name "$model" --steps "$model_steps" "${reps[@]}" | tee -a "$results"
    echo "run.sh: $model: diffusers" >&2
    "$py" "$here/diffusers_bench.py" "$folder" --name "$model" "${config[@]}" \
        --steps "$model_steps" --threads "$threads" "${reps[@]}" 2>"$out/diffusers-$model.log" \
        | tee -a "$results"
done
if [ "$kernels" = 1 ]; then
    echo "run.sh: fresco-kernels-bench" >&2
    "$(dirname "$bin")/fresco-kernels-bench" --reps 5 | tee -a "$results"
fi
echo "# uptime: $(uptime)" | tee -a "$results" >&2

echo
echo "results: $results"
"$py" "$here/report.py" "$results"
