#!/usr/bin/env bash
# Installs the parts of the CUDA 13.0 toolkit that fresco's `cuda` feature
# needs to build (nvcc, headers, cuBLAS, cuRAND, NVRTC) from NVIDIA's PyPI
# wheels into $FRESCO_CUDA_DIR (default ./.cuda), for machines without a
# system toolkit. Lays them out as a toolkit root (bin/, include/, lib64/)
# and writes the variables that point at it to $FRESCO_CUDA_DIR/env;
# `source` that file, then build with `--features cuda`.
#
# The driver library (libcuda) is not on PyPI; a link-time stub of it goes
# to lib64/stubs (as in NVIDIA's own toolkit), with the driver's soname, so
# binaries load the real driver of the machine they run on.
#
#   scripts/cuda-toolkit.sh                    # install, write env
#   source .cuda/env && cargo build --release -p fresco-worker --features cuda
set -euo pipefail

dir="$(mkdir -p "${FRESCO_CUDA_DIR:-$(pwd)/.cuda}" && cd "${FRESCO_CUDA_DIR:-$(pwd)/.cuda}" && pwd)"
# CUDA 13.0 runs on drivers >= 580 and is one cudarc (candle's CUDA crate) knows.
version="13.0"
cudarc_version="13000"
# Kernels compiled ahead of time target this compute capability (9.0: H100/H200).
compute_cap="${CUDA_COMPUTE_CAP:-90}"

log() { printf '[cuda] %s\n' "$*" >&2; }

venv="$dir/venv"
if [ ! -x "$venv/bin/pip" ]; then
  log "creating $venv"
  python3 -m venv "$venv"
fi
log "installing CUDA $version wheels"
"$venv/bin/pip" install -q \
  "nvidia-cuda-nvcc==$version.*" "nvidia-nvvm==$version.*" "nvidia-cuda-crt==$version.*" \
  "nvidia-cuda-runtime==$version.*" "nvidia-cuda-cccl==$version.*" \
  "nvidia-cuda-nvrtc==$version.*" "nvidia-cublas==$version.*" "nvidia-curand"

wheels="$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
root="$dir/root"
mkdir -p "$root/lib64/stubs"
for part in bin include nvvm; do ln -sfn "$wheels/$part" "$root/$part"; done

# Unversioned names for the linker (the wheels ship only the sonames).
for lib in "$wheels"/lib/lib*.so.*; do
  base="$(basename "$lib")"
  ln -sfn "$lib" "$root/lib64/$base"
  ln -sfn "$lib" "$root/lib64/${base%%.so.*}.so"
done

# Link-time stub of the driver API: every entry point cudarc can call, each
# answering CUDA_ERROR_NO_DEVICE (100), so a binary run against it on a
# machine without a GPU fails cleanly where it asks for a device.
cudarc_src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.* 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -z "$cudarc_src" ]; then
  log "fetching crates to find cudarc's driver bindings"
  cargo fetch -q
  cudarc_src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.* | sort -V | tail -n 1)"
fi
grep -o 'load::<_F>("cu[A-Za-z0-9_]*")' "$cudarc_src/src/driver/sys/mod.rs" \
  | sed 's/.*("\(.*\)")/int \1(void) { return 100; }/' | sort -u > "$dir/libcuda-stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib64/stubs/libcuda.so" "$dir/libcuda-stub.c"
log "driver stub: $(wc -l < "$dir/libcuda-stub.c") entry points"

cat > "$dir/env" <<EOF
export CUDA_PATH="$root"
export CUDA_ROOT="$root"
export CUDA_HOME="$root"
export PATH="$root/bin:\$PATH"
export CUDARC_CUDA_VERSION=$cudarc_version
export CUDA_COMPUTE_CAP=$compute_cap
export LD_LIBRARY_PATH="$root/lib64\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
EOF
"$root/bin/nvcc" --version | tail -n 2 >&2
log "wrote $dir/env"
