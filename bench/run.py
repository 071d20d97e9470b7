"""make bench: r1's training step and KV-cache decoding beside PyTorch eager (transformers'
LlamaForCausalLM, same torch, same threads) and the machine's ceilings, all in one run.
Prints markdown tables; never asserts on time. Usage: run.py BUILD_DIR [--quick]"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    quick = "--quick" in sys.argv
    threads = int(os.environ.get("BENCH_THREADS", "2"))
    wait = os.environ.get("OMP_WAIT_POLICY", "(runtime default)")
    env = dict(os.environ)
    r1b = [os.path.join(build, "bench", "r1_bench"), "--threads", str(threads)]
    py = [sys.executable, os.path.join(HERE, "hf_bench.py")]
    th = ["--threads", str(threads)]
    steps = ["--steps", "1" if quick else "3"]
    new = ["--new-tokens", "32" if quick else "128"]

    print(f"# r1 benchmarks ({time.strftime('%Y-%m-%d')}), threads={threads}, OMP_WAIT_POLICY={wait}")
    peak = run(r1b + ["matmul", "--n", "1024"], env)["gflops"]
    print(f"\nfp32 matmul peak (1024^3, torch::mm, same run): {peak:.0f} GFLOP/s\n")

    print("## Training step (forward + backward + AdamW), batch 8 x 256\n")
    print("| shape | r1 tokens/s | r1 GFLOP/s | % of matmul peak | PyTorch eager tokens/s | r1 / eager | r1 peak RSS MB | eager peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for preset in ["bench-s", "bench-m"]:
        a = run(r1b + ["train", "--preset", preset] + steps, env)
        b = run(py + ["train", "--preset", preset] + steps + th, env)
        print(f"| {preset} | {a['tokens_per_s']:.0f} | {a['gflops']:.0f} | {100 * a['gflops'] / peak:.0f}% | "
              f"{b['tokens_per_s']:.0f} | {a['tokens_per_s'] / b['tokens_per_s']:.2f}x | {a['peak_rss_mb']:.0f} | {b['peak_rss_mb']:.0f} |")

    print("\n## Decoding with the KV cache (prompt 16, greedy)\n")
    print("| shape | batch | r1 tokens/s | transformers generate tokens/s | r1 / transformers | r1 batch-B / batch-1 | matvec ceiling tokens/s (batch 1) | r1 peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for preset in ["bench-s", "bench-m"]:
        ceiling = run(py + ["matvec", "--preset", preset] + th, env)["tokens_per_s"]
        base = None
        for batch in [1, 8, 32]:
            a = run(r1b + ["decode", "--preset", preset, "--batch", str(batch)] + new, env)
            b = run(py + ["decode", "--preset", preset, "--batch", str(batch)] + new + th, env)
            base = base or a["tokens_per_s"]
            print(f"| {preset} | {batch} | {a['tokens_per_s']:.0f} | {b['tokens_per_s']:.0f} | "
                  f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}x | {a['tokens_per_s'] / base:.1f}x | "
                  f"{ceiling:.0f} | {a['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
