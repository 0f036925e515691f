#!/usr/bin/env bash
# Makes the `cuda` feature build on a machine that reaches only the package registries.
#
#   tools/setup-cuda-build.sh            # once: LLVM for cubecl's CUDA compiler, from PyPI
#   tools/setup-cuda-build.sh --build    # and build target/cuda/release/dcae with CUDA
#
# cubecl-cuda compiles kernels through LLVM (NVPTX); its build script (tracel-llvm-bundler)
# downloads an LLVM bundle from GitHub unless one is installed at
# `${XDG_DATA_HOME:-~/.local/share}/tracel/tracel-llvm-23.1.0-4` with a `.tracel-llvm-installed`
# marker. The `mlc-llvm-static` and `mlc-llvm-static-extra-targets` 23.1.1 wheels on PyPI hold a
# static LLVM 23.1.1 with the NVPTX target and its `llvm-config`: this script unpacks them into
# a cache and links that folder there, so the bundler finds it and never downloads.
# `CUDARC_CUDA_VERSION` pins the CUDA driver API cudarc binds to (13000 = CUDA 13.0, what driver
# 580 on the machines we borrow provides; override it for another driver). The build goes to
# its own target folder (target/cuda) so the default build's artefacts stay as they are.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version=23.1.1
cache="${DCAE_LLVM_CACHE:-$HOME/.cache/dcae/mlc-llvm-$version}"
dest="${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-23.1.0-4"
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"

llvm="$cache/unpacked/mlc_llvm_static/static"
if [ ! -x "$llvm/bin/llvm-config" ]; then
  mkdir -p "$cache"
  python3 -m pip download --no-deps -q -d "$cache" \
    "mlc-llvm-static==$version" "mlc-llvm-static-extra-targets==$version"
  rm -rf "$cache/unpacked"
  mkdir -p "$cache/unpacked"
  for whl in "$cache"/mlc_llvm_static*-"$version"-*.whl; do
    python3 -m zipfile -e "$whl" "$cache/unpacked"
  done
  chmod +x "$llvm"/bin/*
fi
got="$("$llvm/bin/llvm-config" --version)"
[ "$got" = "$version" ] || { echo "error: $llvm/bin/llvm-config says $got, expected $version" >&2; exit 1; }
"$llvm/bin/llvm-config" --targets-built | grep -qw NVPTX \
  || { echo "error: this LLVM has no NVPTX target" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
if [ "$(readlink -f "$dest" 2>/dev/null)" != "$(readlink -f "$llvm")" ]; then
  rm -rf "$dest"
  ln -s "$llvm" "$dest"
fi
touch "$dest/.tracel-llvm-installed"
echo "LLVM $version (NVPTX) at $dest -> $llvm"
echo "export CUDARC_CUDA_VERSION=$CUDARC_CUDA_VERSION"

if [ "${1:-}" = "--build" ]; then
  cd "$root"
  CARGO_TARGET_DIR="$root/target/cuda" cargo build --release --workspace --features dcae-cli/cuda
  bin="$root/target/cuda/release/dcae"
  echo "built $bin"
  # What the binary needs from the C and C++ libraries of the machine that runs it (the
  # newest version of each; Ubuntu 24.04 has GLIBC_2.39 and GLIBCXX_3.4.33).
  objdump -T "$bin" | grep -o 'GLIBC[A-Z]*_[0-9.]*' | sort -uV \
    | awk -F_ '{newest[$1] = $0} END {for (k in newest) print "needs " newest[k]}'
fi
