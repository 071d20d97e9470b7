"""The machine a benchmark ran on, for the header of every table: CPU model and vendor, the cores
the run may use, and the instruction sets that change the numbers (AVX-512, AVX512-BF16, AMX)."""
import os


def describe():
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
    isa = [name for flag, name in (("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"), ("amx_tile", "AMX"))
           if flag in flags]
    cores = len(os.sched_getaffinity(0))
    return f"{model} ({vendor}), {cores} cores, {', '.join(isa) if isa else 'no AVX-512'}{'' if 'amx_tile' in flags else ', no AMX'}"


if __name__ == "__main__":
    print(describe())
