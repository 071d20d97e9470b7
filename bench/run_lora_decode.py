"""Decoding with LoRA adapters unmerged (what GRPO's engine does each step) against the same model
merged (what merging before every step's rollouts would give): r1 eval's batched greedy decoding of
the demo's held-out problems (tests/data/tiny-r1-zero-base, 80 new tokens) with the adapter
directory, with its merge-lora output, and with the base. Same binary, same run, alternating, the
median of 3. Usage: run_lora_decode.py BUILD_DIR"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = os.path.join(ROOT, "tests", "data", "tiny-r1-zero-base")


def run(r1, *args):
    return subprocess.run([r1, *map(str, args)], capture_output=True, text=True, check=True).stdout


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    r1 = os.path.join(build, "r1")
    print(f"Machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        adapter, merged = os.path.join(tmp, "adapter"), os.path.join(tmp, "merged")
        run(r1, "grpo", "--init", BASE, "--prompts", os.path.join(BASE, "task", "train.jsonl"), "--prompt-template",
            "plain", "--steps", 3, "--prompts-per-step", 16, "--group-size", 8, "--micro-batch", 32, "--lr", "1e-3",
            "--max-completion-tokens", 40, "--beta", 0, "--seed", 1, "--reward", "accuracy_math:1,format_think:0",
            "--out", adapter, "--threads", 2, "--sample-every", 0, "--lora-rank", 16, "--lora-alpha", 32,
            "--lora-targets", "all-linear")
        run(r1, "model", "merge-lora", "--adapter", adapter, "--out", merged)
        models = [("LoRA r=16 all-linear, unmerged", adapter), ("the same, merged (merge-lora)", merged),
                  ("base model, no adapter", BASE)]
        seconds = {name: [] for name, _ in models}
        results = {}
        for _ in range(3):
            for name, model in models:
                t0 = time.perf_counter()
                out = run(r1, "eval", "--model", model, "--task", os.path.join(BASE, "task", "test.jsonl"),
                          "--prompt-format", "plain", "--temperature", 0, "--max-new-tokens", 80, "--threads", 2,
                          "--reward", "accuracy_math:1,format_think:0", "--out-dir", os.path.join(tmp, "eval"))
                seconds[name].append(time.perf_counter() - t0)
                results[name] = json.loads(out)["pass@1"]
        problems = sum(1 for _ in open(os.path.join(BASE, "task", "test.jsonl")))
        print(f"\n## Decoding with LoRA adapters unmerged vs merged: r1 eval, {problems} problems, greedy, "
              "80 new tokens, fp32, 2 threads, median of 3\n")
        print("| model | wall s | vs merged | pass@1 |")
        print("|---|---|---|---|")
        ref = statistics.median(seconds[models[1][0]])
        for name, _ in models:
            s = statistics.median(seconds[name])
            print(f"| {name} | {s:.2f} | {s / ref:.2f} | {results[name]:.3f} |")


if __name__ == "__main__":
    main()
