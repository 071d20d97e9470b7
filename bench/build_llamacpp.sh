#!/usr/bin/env bash
# Builds llama.cpp's own benchmark tools (llama-bench, llama-batched-bench, llama-quantize) from the
# llama.cpp source that PyPI's llama-cpp-python sdist vendors, with CMake, for this CPU (GGML_NATIVE):
# the reference bench/run_llamacpp.py measures r1 against. Idempotent; prints the bin directory last.
# Usage: bench/build_llamacpp.sh [PYTHON]   (PYTHON: a pip-capable interpreter, default the project venv's)
set -euo pipefail
VERSION=0.3.36
ROOT="${R1_CACHE:-$HOME/.cache/r1.cpp}/llama.cpp-$VERSION"
PYTHON="${1:-$(bash "$(dirname "$0")/../scripts/setup.sh" --print-venv | tail -n 1)/bin/python}"
BIN="$ROOT/build/bin"
if [[ -x "$BIN/llama-bench" && -x "$BIN/llama-batched-bench" && -x "$BIN/llama-quantize" ]]; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$ROOT"
if [[ ! -d "$ROOT/src" ]]; then
  "$PYTHON" -m pip download "llama-cpp-python==$VERSION" --no-binary :all: --no-deps -d "$ROOT" >&2
  tar xzf "$ROOT/llama_cpp_python-$VERSION.tar.gz" -C "$ROOT"
  mv "$ROOT/llama_cpp_python-$VERSION/vendor/llama.cpp" "$ROOT/src"
  rm -rf "$ROOT/llama_cpp_python-$VERSION" "$ROOT/llama_cpp_python-$VERSION.tar.gz"
fi
cmake -S "$ROOT/src" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$ROOT/build" -j "$(nproc)" --target llama-bench llama-batched-bench llama-quantize >&2
echo "$BIN"
