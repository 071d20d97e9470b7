"""make bench (GRPO part): one GRPO step of the demo configuration (16 prompts x 8 completions,
64-token completions, the demo's 0.9M-parameter model, 2 threads) split into generation / reward /
forward-backward, tokens generated per second beside the engine's best batched decode throughput on
the same model, peak memory; and seconds per step beside TRL's GRPOTrainer on CPU in the same run
(same model directory, prompts, group size, completion length, reward).
Usage: run_grpo.py BUILD_DIR [STEPS]"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from demo_model import make_demo_model, r1_runner  # noqa: E402

P, G, MAX_TOKENS, THREADS = 16, 8, 64, 2


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    r1 = os.path.join(build, "r1")
    run = r1_runner(build)

    with tempfile.TemporaryDirectory() as tmp:
        task, model = make_demo_model(run, tmp)
        prompts = os.path.join(task, "train.jsonl")

        out = os.path.join(tmp, "grpo")
        timed = subprocess.run(
                               ["/usr/bin/time", "-f", "%M", r1, "grpo", "--init", model, "--prompts", prompts,
                                "--out", out, "--prompt-template", "plain", "--reward", "accuracy_math:1",
                                "--steps", str(steps), "--prompts-per-step", str(P), "--group-size", str(G),
                                "--micro-batch", "32", "--lr", "1e-4", "--max-completion-tokens", str(MAX_TOKENS),
                                "--beta", "0", "--seed", "1", "--threads", str(THREADS)],
                               capture_output=True, text=True, check=True)
        r1_rss = int(timed.stderr.strip().splitlines()[-1]) / 1024
        with open(os.path.join(out, "metrics.jsonl")) as f:
            m = [json.loads(line) for line in f][1:]  # the first step warms up the allocator and threads

        def mean(key):
            return statistics.mean(r[key] for r in m)

        engine = json.loads(subprocess.run(
            [os.path.join(build, "bench", "r1_bench"), "--threads", str(THREADS), "decode", "--model", model,
             "--batch", str(P * G), "--prompt", "8", "--new-tokens", str(MAX_TOKENS), "--prefill-prompt", "8"],
            capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        trl = json.loads(subprocess.run(
            [sys.executable, os.path.join(HERE, "trl_grpo.py"), model, prompts, str(steps), str(P), str(G),
             str(MAX_TOKENS), str(THREADS)], capture_output=True, text=True, check=True,
            env=dict(os.environ, OMP_NUM_THREADS=str(THREADS), HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
        ).stdout.strip().splitlines()[-1])

    step = mean("step_s")
    print(f"\n## GRPO step, demo configuration ({P} prompts x {G} completions, <= {MAX_TOKENS} tokens, "
          f"0.9M-parameter model, {THREADS} threads, mean of steps 2-{steps})\n")
    print("| | r1 | share of step |")
    print("|---|---|---|")
    for key, name in (("generation_s", "generation"), ("reward_s", "reward"), ("train_s", "forward-backward + AdamW")):
        print(f"| {name} s | {mean(key):.3f} | {100 * mean(key) / step:.0f}% |")
    print(f"| step s | {step:.3f} | |")
    print(f"| mean completion tokens | {mean('completion_length'):.1f} | |")
    print(f"| rollout tokens/s (whole step) | {mean('tokens_per_s'):.0f} | |")
    gen_tps = mean("completion_length") * P * G / mean("generation_s")
    print(f"| rollout tokens/s (generation only) | {gen_tps:.0f} | |")
    print(f"| engine best: greedy decode at batch {P * G}, tokens/s | {engine['tokens_per_s']:.0f} | "
          f"rollouts reach {100 * gen_tps / engine['tokens_per_s']:.0f}% |")
    print(f"| peak RSS MB | {r1_rss:.0f} | |")
    print(f"\n### Beside TRL {trl_version()} GRPOTrainer (CPU, same model directory, prompts, G, length, reward)\n")
    print("| | r1 | TRL | TRL / r1 |")
    print("|---|---|---|---|")
    print(f"| seconds per GRPO step | {step:.3f} | {trl['step_s']:.3f} | {trl['step_s'] / step:.1f}x |")
    print(f"| mean completion tokens | {mean('completion_length'):.1f} | {trl['completion_length']:.1f} | |")
    print(f"| peak RSS MB | {r1_rss:.0f} | {trl['peak_rss_mb']:.0f} | |")


def trl_version():
    import importlib.metadata
    return importlib.metadata.version("trl")


if __name__ == "__main__":
    main()
