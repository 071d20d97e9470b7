"""make bench (optimisation switches): what each of r1's CPU optimisations is worth on this machine
today, each measured with and without its switch by the same binary, alternating, two rounds:
- the fused CPU kernels (RMSNorm, SwiGLU, rotary, the decode and shared-prompt attention):
  R1_NO_FUSED_OPS=1 turns them off;
- the weights packed once for MKL's GEMM in the engine: R1_NO_PACKED_GEMM=1 turns it off;
- r1's decode kernels for products of few rows (fp32, bf16, int8 weights): R1_NO_DECODE_KERNELS=1;
- int8 weights meeting int8 activations (VNNI / vpmaddubsw dot products) in those kernels:
  R1_NO_INT8_ACTIVATIONS=1 keeps float32 activations;
- r1's answer to MKL's "is this CPU Intel's?" (MKL's fast kernels on AMD): R1_MKL_VENDOR_CHECK=1 keeps
  MKL's own answer (on an Intel CPU both answers are yes: the row shows the hook costs nothing).
Usage: run_switches.py BUILD_DIR [--only SWITCH]"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402


def bench_m_decode(switch, batch, dtype=None):
    """A workload row: greedy decoding of 64 tokens on the bench-m preset."""
    args = ["decode", "--preset", "bench-m", "--batch", str(batch), "--new-tokens", "64"]
    short = {None: "", "bfloat16": " bf16", "int8": " int8"}[dtype]
    return (switch, f"greedy decode, bench-m{short}, batch {batch}", args + (["--dtype", dtype] if dtype else []),
            "tokens_per_s", "tokens/s")


WORKLOADS = [  # (switch, what, r1_bench arguments, JSON field, unit)
    ("R1_NO_FUSED_OPS", "training step, tiny, 8 x 256 tokens", ["train", "--preset", "tiny", "--steps", "4"],
     "tokens_per_s", "tokens/s"),
    ("R1_NO_FUSED_OPS", "greedy decode, tiny, batch 64", ["decode", "--preset", "tiny", "--batch", "64"],
     "tokens_per_s", "tokens/s"),
    bench_m_decode("R1_NO_FUSED_OPS", 1),
    ("R1_NO_PACKED_GEMM", "greedy decode, small, batch 64", ["decode", "--preset", "small", "--batch", "64"],
     "tokens_per_s", "tokens/s"),
    bench_m_decode("R1_NO_PACKED_GEMM", 8),
    bench_m_decode("R1_NO_DECODE_KERNELS", 1),
    bench_m_decode("R1_NO_DECODE_KERNELS", 1, "bfloat16"),
    bench_m_decode("R1_NO_DECODE_KERNELS", 8, "bfloat16"),
    bench_m_decode("R1_NO_INT8_ACTIVATIONS", 1, "int8"),
    bench_m_decode("R1_NO_INT8_ACTIVATIONS", 8, "int8"),
    ("R1_MKL_VENDOR_CHECK", "training step, bench-s, 8 x 256 tokens", ["train", "--preset", "bench-s", "--steps", "3"],
     "tokens_per_s", "tokens/s"),
]


def measure(build, args, field, switch_off):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    if switch_off:
        env[switch_off] = "1"
    out = subprocess.run([os.path.join(build, "bench", "r1_bench"), "--threads", "2", *args], env=env,
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])[field])


def main():
    print(f"Machine: {describe()}")
    build = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "build"
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    print("\n## Optimisation switches (same binary, alternating runs, two rounds, 2 threads)\n")
    print("| switch | workload | off | on | on / off |")
    print("|---|---|---|---|---|")
    for switch, what, args, field, unit in WORKLOADS:
        if only and switch != only:
            continue
        off, on = [], []
        for _ in range(2):
            off.append(measure(build, args, field, switch))
            on.append(measure(build, args, field, None))
        print(f"| {switch} | {what}, {unit} | {min(off):,.0f}-{max(off):,.0f} | {min(on):,.0f}-{max(on):,.0f} | "
              f"{min(on) / max(off):.2f}-{max(on) / min(off):.2f}x |")


if __name__ == "__main__":
    main()
