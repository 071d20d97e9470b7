"""Sharded data parallelism: peak resident memory per rank and throughput of r1 pretrain with plain
data parallelism (--zero 0) and ZeRO-1/2/3 at 2 and 4 ranks on this CPU's cores, beside r1 plan's
arithmetic for the same run (live memory: R1_NO_KEEP_FREED_MEMORY=1 returns freed tensors to the
system, so the peak is what the run held). Same binary, same run. Usage: run_zero.py BUILD_DIR"""
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402
from readme_data import peak_mb, r1, readme_data  # noqa: E402

LIVE = dict(os.environ, R1_NO_KEEP_FREED_MEMORY="1")
MICRO = 2  # sequences per micro-batch: 2 micro-batches per rank at 2 ranks, 1 at 4


def planned_mb(build, ranks, zero):
    plan = json.loads(r1(build, "plan", "--json", "--fp32", "--preset", "small", "--gpus", ranks, "--zero", zero,
                         "--rollouts", 0, "--max-context", 256, "--micro-batch", MICRO))
    return plan["total_bytes"] / 1e6


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    print(f"Machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        tok, data = readme_data(build, tmp, 16384)
        print("\n## ZeRO stages against plain data parallelism: r1 pretrain, preset small (40M parameters), fp32, "
              f"1 thread per rank, global batch 8 x 256 tokens in micro-batches of {MICRO}, 4 steps\n")
        print("| ranks | --zero | peak RSS per rank MB | saved vs --zero 0 MB | r1 plan MB | plan / measured | "
              "tokens/s | throughput vs --zero 0 |")
        print("|---|---|---|---|---|---|---|---|")
        for ranks in (2, 4):
            base = None
            for zero in (0, 1, 2, 3):
                out = os.path.join(tmp, f"r{ranks}-z{zero}")
                rss = peak_mb(build, "launch", "--nproc", ranks, "--", "pretrain", "--preset", "small", "--tokenizer", tok,
                              "--data", data, "--out", out, "--steps", 4, "--seq-len", 256, "--batch-tokens", 2048,
                              "--micro-batch", MICRO, "--threads", 1, "--zero", zero, env=LIVE)
                m = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))][1:]
                tps = statistics.median(r["tokens_per_s"] for r in m)
                plan = planned_mb(build, ranks, zero)
                base = base or (rss, tps)
                print(f"| {ranks} | {zero} | {rss:.0f} | {base[0] - rss:.0f} | {plan:.0f} | {plan / rss:.2f} | "
                      f"{tps:.0f} | {tps / base[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
