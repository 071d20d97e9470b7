"""make bench: r1's training step and KV-cache decoding beside PyTorch eager (transformers'
LlamaForCausalLM, same torch, same threads) and the machine's ceilings, all in one run.
Prints markdown tables; never asserts on time. Usage: run.py BUILD_DIR [--quick]"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, extra_env=None):
    env = dict(os.environ, **(extra_env or {}))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    print(f"Machine: {describe()}")
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    quick = "--quick" in sys.argv
    threads = int(os.environ.get("BENCH_THREADS", "2"))
    r1b = [os.path.join(build, "bench", "r1_bench"), "--threads", str(threads)]
    # Weights read per decoded token at batch 1: the presets' parameter counts, from r1 itself.
    params = {p: json.loads(subprocess.run([os.path.join(build, "r1"), "model", "info", "--preset", p, "--json"],
                                           capture_output=True, text=True, check=True).stdout)["parameters"]
              for p in ("bench-s", "bench-m")}
    py = [sys.executable, os.path.join(HERE, "hf_bench.py")]
    th = ["--threads", str(threads)]
    steps = ["--steps", "1" if quick else "3"]
    new = ["--new-tokens", "32" if quick else "128"]

    print(f"# r1 benchmarks ({time.strftime('%Y-%m-%d %H:%M')}), {threads} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset (runtime default)')}")
    peak = run(r1b + ["matmul", "--n", "1024"])["gflops"]
    bw = run(r1b + ["bandwidth", "--reps", "5"])["gb_per_s"]
    print(f"\nCeilings measured in this run: fp32 matmul {peak:.0f} GFLOP/s (torch::mm 1024^3); "
          f"memory read {bw:.1f} GB/s (sum of 400 MB).\n")

    print("## Training step (forward + backward + AdamW), batch 8 x 256, fp32\n")
    print("| shape | r1 tokens/s | r1 GFLOP/s | % of matmul peak | eager tokens/s | r1 / eager "
          "| eager, r1's malloc settings | r1 / that | r1 peak RSS MB | eager peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    same_malloc = {"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"}
    for preset in ["bench-s", "bench-m"]:
        a = run(r1b + ["train", "--preset", preset] + steps)
        b = run(py + ["train", "--preset", preset] + steps + th)
        c = run(py + ["train", "--preset", preset] + steps + th, same_malloc)
        print(f"| {preset} | {a['tokens_per_s']:.0f} | {a['gflops']:.0f} | {100 * a['gflops'] / peak:.0f}% | "
              f"{b['tokens_per_s']:.0f} | {a['tokens_per_s'] / b['tokens_per_s']:.2f}x | {c['tokens_per_s']:.0f} | "
              f"{a['tokens_per_s'] / c['tokens_per_s']:.2f}x | {a['peak_rss_mb']:.0f} | {b['peak_rss_mb']:.0f} |")

    print("\n## Decoding with the KV cache (prompt 16, greedy, fp32)\n")
    print("| shape | batch | r1 tokens/s | transformers generate tokens/s | r1 / transformers "
          "| r1 batch B / batch 1 | bandwidth ceiling, batch 1 | r1 peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for preset in ["bench-s", "bench-m"]:
        ceiling = bw * 1e9 / (4 * params[preset])
        base = None
        for batch in [1, 8, 32]:
            a = run(r1b + ["decode", "--preset", preset, "--batch", str(batch)] + new)
            b = run(py + ["decode", "--preset", preset, "--batch", str(batch)] + new + th)
            base = base or a["tokens_per_s"]
            print(f"| {preset} | {batch} | {a['tokens_per_s']:.0f} | {b['tokens_per_s']:.0f} | "
                  f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}x | {a['tokens_per_s'] / base:.1f}x | "
                  f"{ceiling:.0f} | {a['peak_rss_mb']:.0f} |")

    print("\n## Thread settings (r1 decode, batch 1, and training step, bench-s)\n")
    print("| threads | OMP_WAIT_POLICY | decode fp32 tokens/s | decode bf16 tokens/s | train tokens/s |")
    print("|---|---|---|---|---|")
    for t in [1, 2]:
        for policy in ["ACTIVE", "PASSIVE"]:
            e = {"OMP_WAIT_POLICY": policy}
            base = [r1b[0], "--threads", str(t)]
            d32 = run(base + ["decode", "--preset", "bench-s", "--batch", "1"] + new, e)["tokens_per_s"]
            d16 = run(base + ["decode", "--preset", "bench-s", "--batch", "1", "--dtype", "bfloat16"] + new, e)["tokens_per_s"]
            tr = run(base + ["train", "--preset", "bench-s", "--steps", "1"], e)["tokens_per_s"]
            print(f"| {t} | {policy} | {d32:.0f} | {d16:.0f} | {tr:.0f} |")
    d = run(r1b + ["decode", "--preset", "bench-m", "--batch", "1", "--dtype", "bfloat16"] + new)
    print(f"\nbench-m, batch 1, bf16 weights and cache: {d['tokens_per_s']:.0f} tokens/s "
          f"(fp32 bandwidth ceiling {bw * 1e9 / (4 * params['bench-m']):.0f}, bf16 {bw * 1e9 / (2 * params['bench-m']):.0f})")


if __name__ == "__main__":
    main()
