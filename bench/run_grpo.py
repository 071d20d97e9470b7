"""make bench (GRPO part): one GRPO step of the demo configuration (16 prompts x 8 completions,
80-token completions, the demo's 0.9M-parameter model, 2 cores) split into generation / reward /
forward-backward, r1 as one 2-thread process and as 2 data-parallel 1-thread processes (r1 launch),
tokens generated per second beside the engine's best batched decode throughput on the same model,
peak memory; and seconds per step beside TRL's GRPOTrainer on CPU in the same run (same model
directory, prompts, group size, completion length, reward), at TRL's defaults and in fp32.
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

P, G, MAX_TOKENS, THREADS = 16, 8, 80, 2


def r1_grpo(r1, model, prompts, out, steps, nproc, precision="fp32"):
    """Runs r1 grpo (nproc > 1: r1 launch, one thread per process); returns (metrics of steps 2.., peak RSS MB)."""
    args = ["grpo", "--init", model, "--prompts", prompts, "--out", out, "--prompt-template", "plain",
            "--reward", "accuracy_math:1", "--steps", str(steps), "--prompts-per-step", str(P), "--group-size", str(G),
            "--micro-batch", "32", "--lr", "1e-4", "--max-completion-tokens", str(MAX_TOKENS), "--beta", "0",
            "--seed", "1", "--threads", str(THREADS // nproc), "--precision", precision,
            # At random initialisation every reward is 0, every group flat: r1's default would skip the
            # whole training pass. Train every rollout, as TRL does, so both do the same work.
            "--no-skip-zero-advantage"]
    cmd = [r1, *args] if nproc == 1 else [r1, "launch", "--nproc", str(nproc), "--", *args]
    timed = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, check=True)
    rss = int(timed.stderr.strip().splitlines()[-1]) / 1024  # the largest process (launch: one rank)
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f][1:], rss  # the first step warms up the allocator and threads


def trl_grpo(model, prompts, steps, precision):
    return json.loads(subprocess.run(
        [sys.executable, os.path.join(HERE, "trl_grpo.py"), model, prompts, str(steps), str(P), str(G),
         str(MAX_TOKENS), str(THREADS), precision], capture_output=True, text=True, check=True,
        env=dict(os.environ, OMP_NUM_THREADS=str(THREADS), HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    ).stdout.strip().splitlines()[-1])


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    r1 = os.path.join(build, "r1")
    run = r1_runner(build)

    with tempfile.TemporaryDirectory() as tmp:
        task, model = make_demo_model(run, tmp)
        prompts = os.path.join(task, "train.jsonl")
        m, r1_rss = r1_grpo(r1, model, prompts, os.path.join(tmp, "grpo"), steps, 1)
        m2, r1_rss2 = r1_grpo(r1, model, prompts, os.path.join(tmp, "grpo-dp"), steps, THREADS)
        m_bf16, _ = r1_grpo(r1, model, prompts, os.path.join(tmp, "grpo-bf16"), steps, 1, "bf16")
        engine = json.loads(subprocess.run(
            [os.path.join(build, "bench", "r1_bench"), "--threads", str(THREADS), "decode", "--model", model,
             "--batch", str(P * G), "--prompt", "8", "--new-tokens", str(MAX_TOKENS), "--prefill-prompt", "8"],
            capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        trl_defaults = trl_grpo(model, prompts, steps, "defaults")
        trl_fp32 = trl_grpo(model, prompts, steps, "fp32")

    def mean(key, rows=m):
        return statistics.mean(r[key] for r in rows)

    step, step_dp = mean("step_s"), mean("step_s", m2)
    print(f"\n## GRPO step, demo configuration ({P} prompts x {G} completions, <= {MAX_TOKENS} tokens, "
          f"0.9M-parameter model, {THREADS} cores, mean of steps 2-{steps})\n")
    print(f"| | r1, 1 process x {THREADS} threads | share of step | r1, {THREADS} processes x 1 thread | share of step |")
    print("|---|---|---|---|---|")
    for key, name in (("generation_s", "generation"), ("reward_s", "reward"), ("train_s", "forward-backward + AdamW")):
        print(f"| {name} s | {mean(key):.3f} | {100 * mean(key) / step:.0f}% | {mean(key, m2):.3f} | "
              f"{100 * mean(key, m2) / step_dp:.0f}% |")
    print(f"| step s | {step:.3f} | | {step_dp:.3f} | |")
    print(f"| mean completion tokens | {mean('completion_length'):.1f} | | {mean('completion_length', m2):.1f} | |")
    print(f"| rollout tokens/s (whole step) | {mean('tokens_per_s'):.0f} | | {mean('tokens_per_s', m2):.0f} | |")
    gen_tps = mean("completion_length") * P * G / mean("generation_s")
    print(f"| rollout tokens/s (generation only) | {gen_tps:.0f} | | "
          f"{mean('completion_length', m2) * P * G / mean('generation_s', m2):.0f} | |")
    print(f"| engine best: greedy decode at batch {P * G}, tokens/s | {engine['tokens_per_s']:.0f} | "
          f"rollouts reach {100 * gen_tps / engine['tokens_per_s']:.0f}% | | |")
    print(f"| peak RSS MB (per process) | {r1_rss:.0f} | | {r1_rss2:.0f} | |")
    print(f"\n### Beside TRL {trl_version()} GRPOTrainer (CPU, same model directory, prompts, G, length, reward)\n")
    print("TRL's defaults are bf16 autocast and gradient checkpointing; \"fp32\" turns both off, as r1 runs.\n")
    step_bf16 = mean("step_s", m_bf16)
    print("r1 bf16: `--precision bf16`, bf16 matrix products in the training pass (AMX on CPUs that have it).\n")
    print(f"| seconds per GRPO step | TRL defaults | TRL fp32 | r1 1 process | r1 {THREADS} processes | r1 1 process, bf16 |")
    print("|---|---|---|---|---|---|")
    print(f"| seconds | {trl_defaults['step_s']:.3f} | {trl_fp32['step_s']:.3f} | {step:.3f} | {step_dp:.3f} | "
          f"{step_bf16:.3f} |")
    print(f"| TRL defaults / this | 1.0x | {trl_defaults['step_s'] / trl_fp32['step_s']:.1f}x | "
          f"{trl_defaults['step_s'] / step:.1f}x | {trl_defaults['step_s'] / step_dp:.1f}x | "
          f"{trl_defaults['step_s'] / step_bf16:.1f}x |")
    print(f"| TRL fp32 / this | | 1.0x | {trl_fp32['step_s'] / step:.1f}x | {trl_fp32['step_s'] / step_dp:.1f}x | "
          f"{trl_fp32['step_s'] / step_bf16:.1f}x |")
    print(f"| mean completion tokens | {trl_defaults['completion_length']:.1f} | {trl_fp32['completion_length']:.1f} | "
          f"{mean('completion_length'):.1f} | {mean('completion_length', m2):.1f} | "
          f"{mean('completion_length', m_bf16):.1f} |")
    print(f"| peak RSS MB | {trl_defaults['peak_rss_mb']:.0f} | {trl_fp32['peak_rss_mb']:.0f} | {r1_rss:.0f} | "
          f"{r1_rss2:.0f} per process | |")


def trl_version():
    import importlib.metadata
    return importlib.metadata.version("trl")


if __name__ == "__main__":
    main()
