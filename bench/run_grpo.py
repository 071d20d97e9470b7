"""make bench (GRPO part): one GRPO step of the demo configuration (16 prompts x 8 completions,
80-token completions, the demo's 0.9M-parameter model, 2 cores), r1 beside TRL's GRPOTrainer on CPU
in the same run (same model directory, prompts, group size, completion length, reward; TRL at its
defaults and in fp32), from two starting points:
1. the model at random initialisation: every completion runs to the 80-token limit and every reward
   is 0, so the step is all work and no signal; r1 trains every rollout (--train-zero-advantage)
   as TRL does. Split into generation / reward / forward-backward, r1 as one 2-thread process and
   as 2 data-parallel 1-thread processes (r1 launch), tokens generated per second beside the
   engine's best batched decode throughput on the same model, peak memory.
2. the demo's own base model (recipes/tiny-r1-zero.sh BASE_ONLY=1, ~4 minutes, or --base DIR from
   an earlier run): the first steps of the demo's GRPO, short bare answers and some reasoning,
   mixed rewards; r1 as it runs by default (flat groups skipped) and with every rollout trained.
Usage: run_grpo.py BUILD_DIR [STEPS] [--base OUT/base]"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from demo_model import make_demo_model, r1_runner  # noqa: E402

P, G, MAX_TOKENS, THREADS = 16, 8, 80, 2


def r1_grpo(r1, model, prompts, out, steps, nproc, precision="fp32", skip=True):
    """Runs r1 grpo (nproc > 1: r1 launch, one thread per process); returns (metrics of steps 2.., peak RSS MB)."""
    args = ["grpo", "--init", model, "--prompts", prompts, "--out", out, "--prompt-template", "plain",
            "--reward", "accuracy_math:1", "--steps", str(steps), "--prompts-per-step", str(P), "--group-size", str(G),
            "--micro-batch", "32", "--lr", "1e-4", "--max-completion-tokens", str(MAX_TOKENS), "--beta", "0",
            "--seed", "1", "--threads", str(THREADS // nproc), "--precision", precision,
            *([] if skip else ["--train-zero-advantage"])]
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
    print(f"Machine: {describe()}")
    argv = sys.argv[1:]
    base = None
    if "--base" in argv:
        base = argv[argv.index("--base") + 1]
        del argv[argv.index("--base"):argv.index("--base") + 2]
    build = argv[0] if argv else "build"
    steps = int(argv[1]) if len(argv) > 1 else 6
    r1 = os.path.join(build, "r1")
    run = r1_runner(build)

    with tempfile.TemporaryDirectory() as tmp:
        task, model = make_demo_model(run, tmp)
        prompts = os.path.join(task, "train.jsonl")
        # At random initialisation every reward is 0, every group flat: r1's default would skip the
        # whole training pass. Train every rollout, as TRL does, so both do the same work.
        m, r1_rss = r1_grpo(r1, model, prompts, os.path.join(tmp, "grpo"), steps, 1, skip=False)
        m2, r1_rss2 = r1_grpo(r1, model, prompts, os.path.join(tmp, "grpo-dp"), steps, THREADS, skip=False)
        m_bf16, _ = r1_grpo(r1, model, prompts, os.path.join(tmp, "grpo-bf16"), steps, 1, "bf16", skip=False)
        engine = json.loads(subprocess.run(
            [os.path.join(build, "bench", "r1_bench"), "--threads", str(THREADS), "decode", "--model", model,
             "--batch", str(P * G), "--prompt", "8", "--new-tokens", str(MAX_TOKENS), "--prefill-prompt", "8"],
            capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        trl_defaults = trl_grpo(model, prompts, steps, "defaults")
        trl_fp32 = trl_grpo(model, prompts, steps, "fp32")
        demo = from_demo_base(r1, build, base, tmp, 2 * steps - 1)

    def mean(key, rows=m):
        return statistics.mean(r[key] for r in rows)

    step, step_dp = mean("step_s"), mean("step_s", m2)
    print(f"\n## GRPO step, demo configuration ({P} prompts x {G} completions, <= {MAX_TOKENS} tokens, "
          f"0.9M-parameter model at random initialisation, {THREADS} cores, mean of steps 2-{steps})\n")
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


    print_demo_base(*demo)


def from_demo_base(r1, build, base, tmp, steps):
    """Part 2: r1 (default, every rollout trained, 2 processes) and TRL (defaults, fp32) from the demo's base."""
    if base is None:
        out = os.path.join(tmp, "demo")
        subprocess.run(["bash", os.path.join(HERE, "..", "recipes", "tiny-r1-zero.sh")], check=True,
                       capture_output=True, env=dict(os.environ, R1=r1, OUT=out, BASE_ONLY="1"))
        base = os.path.join(out, "base")
    prompts = os.path.join(base, "..", "task", "train.jsonl")
    r1_runs = {"r1 1 process": r1_grpo(r1, base, prompts, os.path.join(tmp, "b1"), steps, 1)[0],
               "r1 1 process, every rollout trained":
                   r1_grpo(r1, base, prompts, os.path.join(tmp, "b2"), steps, 1, skip=False)[0],
               f"r1 {THREADS} processes": r1_grpo(r1, base, prompts, os.path.join(tmp, "b3"), steps, THREADS)[0]}
    trl_runs = {"TRL defaults": trl_grpo(base, prompts, steps, "defaults"), "TRL fp32": trl_grpo(base, prompts, steps, "fp32")}
    return r1_runs, trl_runs, steps


def print_demo_base(r1_runs, trl_runs, steps):
    print(f"\n## From the demo's base model (the first GRPO steps of make demo; mean of steps 2-{steps})\n")
    print("| | seconds per step | generation s | forward-backward s | rollouts trained | mean completion tokens "
          "| TRL defaults / this | TRL fp32 / this |")
    print("|---|---|---|---|---|---|---|---|")
    trl_d, trl_f = trl_runs["TRL defaults"]["step_s"], trl_runs["TRL fp32"]["step_s"]
    for name, rows in r1_runs.items():
        mean = lambda key: statistics.mean(r[key] for r in rows)  # noqa: E731
        print(f"| {name} | {mean('step_s'):.3f} | {mean('generation_s'):.3f} | {mean('train_s'):.3f} | "
              f"{100 * mean('rollouts_trained'):.0f}% | {mean('completion_length'):.1f} | "
              f"{trl_d / mean('step_s'):.1f}x | {trl_f / mean('step_s'):.1f}x |")
    for name, t in trl_runs.items():
        print(f"| {name} | {t['step_s']:.3f} | | | 100% | {t['completion_length']:.1f} | "
              f"{trl_d / t['step_s']:.1f}x | {trl_f / t['step_s']:.1f}x |")


def trl_version():
    import importlib.metadata
    return importlib.metadata.version("trl")


if __name__ == "__main__":
    main()
