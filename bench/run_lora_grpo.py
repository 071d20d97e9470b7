"""GRPO with LoRA against full fine-tuning on the demo's task: from the committed base model of the
tiny R1-Zero (tests/data/tiny-r1-zero-base, 0.9M parameters), the demo's GRPO (16 prompts x 8
completions, accuracy reward, 80 tokens) with every weight trained and with LoRA adapters on every
linear layer; held-out greedy accuracy before and after, wall time, trainable parameters. Same
binary, same run, this CPU. Usage: run_lora_grpo.py BUILD_DIR [STEPS]"""
import json
import os
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


def heldout(r1, model, tmp):
    out = os.path.join(tmp, "eval-" + os.path.basename(model))
    text = run(r1, "eval", "--model", model, "--task", os.path.join(BASE, "task", "test.jsonl"), "--prompt-format",
               "plain", "--temperature", 0, "--max-new-tokens", 80, "--reward", "accuracy_math:1,format_think:0",
               "--out-dir", out)
    return json.loads(text)["pass@1"]


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 250
    r1 = os.path.join(build, "r1")
    print(f"Machine: {describe()}")
    variants = [("full fine-tuning", "5e-5", []),
                ("LoRA r=16, alpha 32, all-linear", "1e-3", ["--lora-rank", 16, "--lora-alpha", 32, "--lora-targets", "all-linear"]),
                ("LoRA r=16, alpha 32, all-linear", "3e-3", ["--lora-rank", 16, "--lora-alpha", 32, "--lora-targets", "all-linear"])]
    with tempfile.TemporaryDirectory() as tmp:
        before = heldout(r1, BASE, tmp)
        print(f"\n## GRPO on the demo's task from its base model ({steps} steps, 16 x 8 rollouts, fp32, 2 threads)\n")
        print(f"Held-out accuracy of the base model (greedy, {os.path.basename(BASE)}): {before:.3f}\n")
        print("| training | lr | trained parameters | held-out accuracy after | gain (points) | GRPO wall time s | time ratio |")
        print("|---|---|---|---|---|---|---|")
        first = None
        for i, (name, lr, extra) in enumerate(variants):
            out = os.path.join(tmp, f"run{i}")
            t0 = time.perf_counter()
            run(r1, "grpo", "--init", BASE, "--prompts", os.path.join(BASE, "task", "train.jsonl"), "--prompt-template",
                "plain", "--steps", steps, "--prompts-per-step", 16, "--group-size", 8, "--micro-batch", 32, "--lr", lr,
                "--temperature", 1, "--max-completion-tokens", 80, "--beta", 0, "--seed", 1, "--reward",
                "accuracy_math:1,format_think:0", "--out", out, "--threads", 2, "--sample-every", 0, *extra)
            seconds = time.perf_counter() - t0
            first = first or seconds
            after = heldout(r1, out, tmp)
            if extra:
                from safetensors.numpy import load_file
                trained = sum(t.size for t in load_file(os.path.join(out, "adapter_model.safetensors")).values())
            else:
                from safetensors.numpy import load_file
                trained = sum(t.size for t in load_file(os.path.join(out, "model.safetensors")).values())
            print(f"| {name} | {lr} | {trained:,} | {after:.3f} | {100 * (after - before):+.1f} | {seconds:.0f} | "
                  f"{seconds / first:.2f} |")


if __name__ == "__main__":
    main()
