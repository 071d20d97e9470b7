"""The machine a benchmark ran on, for the header of every table: CPU model and vendor, the cores
the run may use, the instruction sets that change the numbers (AVX-512, AVX512-VNNI, AVX512-BF16, AMX), and the
fp32 matmul peak and memory bandwidth measured in the same run (r1_bench matmul / bandwidth of the
build the benchmark was given: the ceilings its numbers are read against)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _build_dir():
    """The build the benchmark was given (its first argument, as every bench/run_*.py takes it), else build/."""
    for arg in sys.argv[1:2]:
        if os.path.exists(os.path.join(arg, "bench", "r1_bench")):
            return arg
    return os.path.join(ROOT, "build")


def measured_ceilings(build=None):
    """(fp32 matmul GFLOP/s at n = 1024, memory bandwidth GB/s) on every core the run may use, or None."""
    exe = os.path.join(build or _build_dir(), "bench", "r1_bench")
    if not os.path.exists(exe):
        return None
    threads = str(len(os.sched_getaffinity(0)))
    try:
        run = lambda *a: json.loads(subprocess.run([exe, "--threads", threads, *a], capture_output=True, text=True,
                                                   check=True, timeout=300).stdout.strip().splitlines()[-1])
        return run("matmul", "--n", "1024")["gflops"], run("bandwidth")["gb_per_s"]
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError):
        return None


def describe(build=None, ceilings=None):
    """The machine in one line; `ceilings` (from measured_ceilings) reuses a measurement already taken."""
    model, vendor, flags = "unknown CPU", "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name":
                    model = value
                elif key == "vendor_id":
                    vendor = value
                elif key == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    names = (("avx512f", "AVX-512"), ("avx512_vnni", "AVX512-VNNI"), ("avx512_bf16", "AVX512-BF16"), ("amx_tile", "AMX"))
    isa = [name for flag, name in names if flag in flags]
    cores = len(os.sched_getaffinity(0))
    text = f"{model} ({vendor}), {cores} cores, {', '.join(isa) if isa else 'no AVX-512'}{'' if 'amx_tile' in flags else ', no AMX'}"
    ceilings = ceilings or measured_ceilings(build)
    if ceilings:
        text += f"; measured now: fp32 matmul {ceilings[0]:.0f} GFLOP/s, memory bandwidth {ceilings[1]:.1f} GB/s"
    return text


if __name__ == "__main__":
    print(describe())
