"""Sharded data parallelism: peak resident memory per rank and throughput of r1 pretrain with plain
data parallelism (--zero 0) and ZeRO-1 (--zero 1) at 2 and 4 ranks on this CPU's cores, beside the
arithmetic of the optimizer state (AdamW: 8 bytes per parameter, / ranks with ZeRO-1). Same binary,
same run. Usage: run_zero.py BUILD_DIR"""
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402
from readme_data import peak_mb, readme_data  # noqa: E402


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    print(f"Machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        tok, data = readme_data(build, tmp, 16384)
        params = None
        print("\n## ZeRO-1 against plain data parallelism: r1 pretrain, preset small (40M parameters), fp32, "
              "1 thread per rank, global batch 8 x 256 tokens, 4 steps\n")
        print("| ranks | --zero | peak RSS per rank MB | saved vs --zero 0 MB | AdamW state per rank (arithmetic) MB | "
              "tokens/s | throughput ratio |")
        print("|---|---|---|---|---|---|---|")
        for ranks in (2, 4):
            base = None
            for zero in (0, 1):
                out = os.path.join(tmp, f"r{ranks}-z{zero}")
                rss = peak_mb(build, "launch", "--nproc", ranks, "--", "pretrain", "--preset", "small", "--tokenizer", tok,
                         "--data", data, "--out", out, "--steps", 4, "--seq-len", 256, "--batch-tokens", 2048,
                         "--micro-batch", 8 // ranks, "--threads", 1, "--zero", zero)
                if params is None:
                    from safetensors.numpy import load_file
                    params = sum(t.size for t in load_file(os.path.join(out, "model.safetensors")).values())
                m = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))][1:]
                tps = statistics.median(r["tokens_per_s"] for r in m)
                state = 8 * params / (ranks if zero else 1) / 1e6
                base = base or (rss, tps)
                print(f"| {ranks} | {zero} | {rss:.0f} | {base[0] - rss:.0f} | {state:.0f} | {tps:.0f} | {tps / base[1]:.2f} |")


if __name__ == "__main__":
    main()
