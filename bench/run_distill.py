"""make bench (reward model and rejection sampling part), at the demo model size (0.9M parameters,
2 threads): reward-model scoring throughput and its cost as a share of a GRPO step when used as a
reward (the demo GRPO configuration with and without rm:DIR in --reward, same run); rejection
sampling throughput (r1 sample, 8 answers per prompt, up to 80 tokens).
Usage: run_distill.py BUILD_DIR"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from demo_model import make_demo_model, r1_runner  # noqa: E402

THREADS = "2"


def main():
    print(f"Machine: {describe()}")
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    run = r1_runner(build)

    with tempfile.TemporaryDirectory() as tmp:
        task, model = make_demo_model(run, tmp)
        with open(os.path.join(task, "corpus.jsonl")) as f:
            docs = [json.loads(l)["text"] for l in f]
        pairs = os.path.join(tmp, "pairs.jsonl")
        with open(pairs, "w") as f:
            for d in docs[:64]:
                q, a = d.split(" A:", 1)
                f.write(json.dumps({"prompt": q + " A:", "chosen": a, "rejected": " <answer>0</answer>"}) + "\n")
        rm = os.path.join(tmp, "rm")
        run("rm", "train", "--init", model, "--data", pairs, "--out", rm, "--val-fraction", 0, "--threads", THREADS)
        rows = os.path.join(tmp, "rows.jsonl")
        n_rows = 4096
        with open(rows, "w") as f:
            for d in (docs * 2)[:n_rows]:
                q, a = d.split(" A:", 1)
                f.write(json.dumps({"prompt": q + " A:", "response": a, "label": 1}) + "\n")
        t0 = time.perf_counter()
        run("rm", "score", "--model", rm, "--input", rows, "--out", os.path.join(tmp, "scored.jsonl"), "--threads",
            THREADS, "--batch", 64)
        score_s = time.perf_counter() - t0

        prompts = os.path.join(task, "train.jsonl")

        def grpo(name, reward):
            out = os.path.join(tmp, name)
            run("grpo", "--init", model, "--prompts", prompts, "--out", out, "--prompt-template", "plain", "--reward",
                reward, "--steps", 5, "--prompts-per-step", 16, "--group-size", 8, "--micro-batch", 32, "--lr", "1e-4",
                "--max-completion-tokens", 80, "--beta", 0, "--seed", 1, "--threads", THREADS)
            with open(os.path.join(out, "metrics.jsonl")) as f:
                m = [json.loads(l) for l in f][1:]
            return {k: statistics.mean(r[k] for r in m) for k in ("reward_s", "step_s", "completion_length")}

        rules = grpo("rules", "accuracy_math:1")
        with_rm = grpo("with-rm", f"accuracy_math:1,rm:{rm}:0.5")

        prompt_rows = 256
        sample_prompts = os.path.join(tmp, "sample-prompts.jsonl")
        with open(prompts) as f, open(sample_prompts, "w") as g:
            for line in list(f)[:prompt_rows]:
                g.write(line)
        t0 = time.perf_counter()
        proc = run("sample", "--model", model, "--prompts", sample_prompts, "--prompt-template", "plain", "--n", 8,
                   "--temperature", 1, "--max-new-tokens", 80, "--reward", "accuracy_math:1", "--keep", "all",
                   "--keep-truncated", "--batch-prompts", 16, "--out", os.path.join(tmp, "traces.jsonl"), "--threads",
                   THREADS)
        sample_s = time.perf_counter() - t0
        with open(os.path.join(tmp, "traces.jsonl")) as f:
            traces = [json.loads(l) for l in f]

    print(f"\n## Reward model and rejection sampling (demo model size, 0.9M parameters, {THREADS} threads)\n")
    print("| measurement | value |")
    print("|---|---|")
    print(f"| reward-model scoring, sequences/s (r1 rm score, {n_rows} rows of ~30 tokens, batch 64, load included) "
          f"| {n_rows / score_s:.0f} |")
    print(f"| GRPO step s, rule reward only (16 x 8, <= 80 tokens) | {rules['step_s']:.3f} |")
    print(f"| GRPO step s, rule reward + rm:DIR | {with_rm['step_s']:.3f} |")
    print(f"| reward time per step: rules / rules + reward model | {rules['reward_s']:.3f} / {with_rm['reward_s']:.3f} s |")
    print(f"| reward model's share of the GRPO step | {100 * (with_rm['reward_s'] - rules['reward_s']) / with_rm['step_s']:.1f}% |")
    tokens = sum(t["completion_tokens"] for t in traces)
    print(f"| rejection sampling, samples/s (r1 sample, {prompt_rows} prompts x 8, <= 80 tokens, "
          f"scored and written) | {len(traces) / sample_s:.0f} |")
    print(f"| rejection sampling, generated tokens/s | {tokens / sample_s:.0f} |")


if __name__ == "__main__":
    main()
