"""Decoding's weight products, r1's kernels (src/model/decode_matmul.h) against the libraries libtorch
hands them to (MKL for float32, oneDNN for bfloat16, MKL's packed GEMM), on SmolLM2-135M's shapes, as
weight GB/s (batch-1 decoding reads every weight once per token, so its ceiling is the memory bandwidth,
measured in the same run) and GFLOP/s (many rows: compute, against the measured matmul peak).
Usage: run_gemv.py BUILD_DIR"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe, measured_ceilings  # noqa: E402

THREADS = 2
SHAPES = [("gate/up 1536x576", 1536, 576), ("down 576x1536", 576, 1536), ("head 49152x576", 49152, 576)]
ROWS = (1, 4, 16, 64)
# "r1 float32 x": the int8 kernel with float32 activations (R1_NO_INT8_ACTIVATIONS=1), the int8 path before
# activations were rounded too.
PATHS = {"float32": ("r1", "torch", "mkl-packed"), "bfloat16": ("r1", "torch"),
         "int8": ("r1", "r1 float32 x", "torch")}
LIBRARY = {("float32", "torch"): "MKL", ("float32", "mkl-packed"): "MKL packed", ("bfloat16", "torch"): "oneDNN",
           ("int8", "torch"): "dequantise + MKL"}


def gemv(build, rows, n, k, dtype, path):
    env = dict(os.environ, R1_NO_INT8_ACTIVATIONS="1") if path == "r1 float32 x" else None
    proc = subprocess.run([os.path.join(build, "bench", "r1_bench"), "--threads", str(THREADS), "gemv", "--rows",
                           str(rows), "--n", str(n), "--k", str(k), "--type", dtype, "--path", path.split()[0],
                           "--reps", "5"], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return None  # the path does not take this product (r1's kernels past their row limit, packed at 1 row)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    peak, bandwidth = measured_ceilings(build)
    machine = describe(build, (peak, bandwidth))
    print(f"Machine: {machine}\n")
    print(f"{THREADS} threads; GB/s of weights read (batch-1 ceiling: the {bandwidth:.1f} GB/s bandwidth) and "
          f"GFLOP/s (ceiling: the {peak:.0f} GFLOP/s fp32 matmul peak)\n")
    print("| weights | shape | rows | path | GB/s | % of bandwidth | GFLOP/s | % of peak |")
    print("|---|---|---|---|---|---|---|---|")
    for dtype, paths in PATHS.items():
        for name, n, k in SHAPES:
            for rows in ROWS:
                for path in paths:
                    r = gemv(build, rows, n, k, dtype, path)
                    if r is None:
                        continue
                    label = f"{path} ({r['isa']})" if path.startswith("r1") else LIBRARY[(dtype, path)]
                    print(f"| {dtype} | {name} | {rows} | {label} | {r['gb_per_s']:.1f} | "
                          f"{100 * r['gb_per_s'] / bandwidth:.0f}% | {r['gflops']:.1f} | {100 * r['gflops'] / peak:.0f}% |",
                          flush=True)


if __name__ == "__main__":
    main()
