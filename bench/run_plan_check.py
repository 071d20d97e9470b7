"""r1 plan against measured peaks: the plan's total for small CPU runs beside their peak resident
memory (/usr/bin/time, with R1_NO_KEEP_FREED_MEMORY=1 so that freed tensors leave the process and
the peak is that of live memory). Pretraining at 1 and 8 sequences per micro-batch, with and
without activation checkpointing, and a GRPO step with its engine's KV cache. Usage:
run_plan_check.py BUILD_DIR"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402
from readme_data import peak_mb, r1, readme_data  # noqa: E402

LIVE = dict(os.environ, R1_NO_KEEP_FREED_MEMORY="1")  # freed tensors leave the process: the peak is live memory


def planned_mb(build, *args):
    return json.loads(r1(build, "plan", "--json", "--fp32", *args))["total_bytes"] / 1e6


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    print(f"Machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        tok, data = readme_data(build, tmp, 16384)
        print("\n## r1 plan against measured peaks (preset small, 40M parameters, fp32, 2 threads)\n")
        print("| run | planned MB | measured peak MB | plan / measured |")
        print("|---|---|---|---|")
        for micro in (1, 8):
            for ckpt in ([], ["--checkpoint-activations"]):
                out = os.path.join(tmp, f"p{micro}{len(ckpt)}")
                measured = peak_mb(build, "pretrain", "--preset", "small", "--tokenizer", tok, "--data", data, "--out", out,
                                   "--steps", 2, "--seq-len", 1024, "--batch-tokens", 1024 * micro, "--micro-batch", micro,
                                   "--threads", 2, *ckpt, env=LIVE)
                planned = planned_mb(build, "--preset", "small", "--rollouts", 0, "--max-context", 1024,
                                     "--micro-batch", micro, *ckpt)
                print(f"| pretrain, {micro} x 1024 tokens{', checkpointed' if ckpt else ''} | {planned:.0f} | "
                      f"{measured:.0f} | {planned / measured:.2f} |")
        # GRPO: 2 steps (AdamW's moments exist from the first step on) of 4 prompts x 8 completions of
        # up to 64 tokens, with a reference model (beta > 0).
        base = os.path.join(tmp, "base")
        r1(build, "model", "init", "--preset", "small", "--out", base)
        os.replace(tok, os.path.join(base, "tokenizer.json"))
        prompts = os.path.join(tmp, "prompts.jsonl")
        with open(prompts, "w") as f:
            for i in range(8):
                f.write(json.dumps({"prompt": f"Question {i}: what comes next?"}) + "\n")
        reward = os.path.join(tmp, "reward.py")
        with open(reward, "w") as f:
            f.write("print(0.5)\n")
        measured = peak_mb(build, "grpo", "--init", base, "--prompts", prompts, "--out", os.path.join(tmp, "grpo"),
                           "--prompt-template", "plain", "--steps", 2, "--prompts-per-step", 4, "--group-size", 8,
                           "--micro-batch", 32, "--max-completion-tokens", 64, "--beta", "0.04", "--reward", "external",
                           "--reward-command", f"{sys.executable} {reward}", "--train-zero-advantage", "--threads", 2,
                           env=LIVE)
        planned = planned_mb(build, "--preset", "small", "--rollouts", 32, "--max-context", 80, "--micro-batch", 32,
                             "--beta", "0.04")
        print(f"| grpo, 32 rollouts x 80 tokens, reference model | {planned:.0f} | {measured:.0f} | "
              f"{planned / measured:.2f} |")


if __name__ == "__main__":
    main()
