#!/usr/bin/env bash
# r1.cpp's checks on a machine with a CUDA GPU, in one command and about 10 minutes, without network:
# the transformers cross-checks on the GPU (fp32, bf16), a one-GPU NCCL data-parallel run (plain and
# ZeRO-1), training tokens/s and MFU, decoding at batch 1 and 64, and one GRPO step beside TRL on the
# same GPU; one table at the end (for docs/benchmarks.md). Needs the project built on this machine
# (make build) or the build and its virtualenv carried over. BUILD=DIR picks the build directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${BUILD:-build}
[ -x "$BUILD/r1" ] || { echo "gpu-check: no $BUILD/r1: run make build first" >&2; exit 2; }
PY=$(sed -n 's/^R1_PYTHON:FILEPATH=//p' "$BUILD/CMakeCache.txt")
[ -x "$PY" ] || { echo "gpu-check: the build's Python ($PY) is missing" >&2; exit 2; }
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" ||
  { echo "gpu-check: PyTorch sees no CUDA GPU on this machine" >&2; exit 2; }
exec timeout 900 "$PY" bench/gpu_check.py "$BUILD"
