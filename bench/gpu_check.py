"""The GPU checks of scripts/gpu-check.sh, one table at the end: transformers cross-checks on the GPU
in fp32 and bf16, a one-GPU NCCL data-parallel run (plain, --zero 1 and --zero 3), training tokens/s and MFU
against this GPU's measured matmul peak, batch-1 and batch-64 decoding, and one GRPO step of the
demo's configuration beside TRL's GRPOTrainer on the same GPU. Every check has a time limit and a
failure is a row of the table, not the end of the run. Usage: gpu_check.py BUILD_DIR"""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from demo_model import make_demo_model, r1_runner  # noqa: E402

ROWS = []


def check(name, fn, limit=120):
    """Runs fn() (returns a detail string); records pass or the failure with its time."""
    t0 = time.perf_counter()
    try:
        detail = fn(limit)
        status = "pass"
    except subprocess.TimeoutExpired:
        status, detail = "FAIL", f"over {limit} s"
    except subprocess.CalledProcessError as e:
        status, detail = "FAIL", (e.stderr or e.stdout or "")[-300:].replace("\n", " ").replace("|", "/")
    except Exception as e:  # noqa: BLE001 - a failed check is a row of the table
        status, detail = "FAIL", str(e)[-300:].replace("\n", " ")
    ROWS.append((name, status, time.perf_counter() - t0, detail))
    print(f"{status}: {name} ({time.perf_counter() - t0:.0f} s) {detail}", flush=True)


def run(cmd, limit, env=None, cwd=None):
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=limit,
                          env=dict(os.environ, **(env or {})), cwd=cwd)


def matmul_peak_tflops(dtype):
    import torch
    a = torch.randn(8192, 8192, device="cuda", dtype=dtype)
    b = torch.randn(8192, 8192, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    return 20 * 2 * 8192 ** 3 / (time.perf_counter() - t0) / 1e12


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    r1 = os.path.join(build, "r1")
    bench = os.path.join(build, "bench", "r1_bench")
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip() or "no nvidia-smi"
    print(f"GPU: {gpu}", flush=True)
    peaks = {}

    def peaks_fn(limit):
        import torch
        peaks["fp32"] = matmul_peak_tflops(torch.float32)
        peaks["bf16"] = matmul_peak_tflops(torch.bfloat16)
        return f"matmul 8192^3: fp32 (TF32 off) {peaks['fp32']:.0f} TFLOP/s, bf16 {peaks['bf16']:.0f} TFLOP/s"
    check("matmul peak (PyTorch)", peaks_fn)
    for dtype in ("float32", "bfloat16"):
        check(f"transformers cross-checks on the GPU, {dtype}",
              lambda limit, d=dtype: run(["ctest", "-R", "py_hf_crosscheck|py_deepseek", "--output-on-failure"], limit,
                                         env={"R1_TEST_DEVICE": "cuda", "R1_TEST_DTYPE": d}, cwd=build).stdout
              .strip().splitlines()[-1], limit=240)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        text = open(os.path.join(ROOT, "README.md")).read()
        with open(corpus, "w") as f:
            f.write(text * 20)
        tok = os.path.join(tmp, "tok.json")
        run([r1, "tokenizer", "train", "--input", corpus, "--vocab-size", "2048", "--special", "<|eos|>", "--out", tok], 120)
        data = os.path.join(tmp, "data")
        run([r1, "data", "prepare", "--tokenizer", tok, "--input", corpus, "--eos", "<|eos|>", "--out", data], 120)
        outs = {}
        for zero in ("0", "1", "3"):
            def nccl(limit, zero=zero):
                out = os.path.join(tmp, "nccl" + zero)
                run([r1, "launch", "--nproc", "1", "--", "pretrain", "--preset", "tiny", "--device", "cuda", "--tokenizer",
                     tok, "--data", data, "--out", out, "--steps", "10", "--seq-len", "128", "--batch-tokens", "2048",
                     "--micro-batch", "16", "--zero", zero], limit, env={"R1_PROCESS_GROUP": "1"})
                outs[zero] = out
                with open(os.path.join(out, "metrics.jsonl")) as f:
                    m = [json.loads(l) for l in f]
                return f"loss {m[0]['loss']:.3f} -> {m[-1]['loss']:.3f}"
            check(f"one-GPU NCCL data-parallel pretraining, --zero {zero}", nccl)

        for zero in ("1", "3"):
            def same(limit, zero=zero):
                from safetensors.torch import load_file
                a, b = (load_file(os.path.join(outs[z], "model.safetensors")) for z in ("0", zero))
                worst = max(float((a[k] - b[k]).abs().max()) for k in a)
                if worst > 1e-6:
                    raise RuntimeError(f"--zero {zero} weights differ from --zero 0 by {worst}")
                return f"largest weight difference {worst:.1e}"
            check(f"--zero {zero} takes the steps of --zero 0", same)
        for preset in ("small", "bench-m"):
            def train(limit, preset=preset):
                j = json.loads(run([bench, "--device", "cuda", "train", "--preset", preset], limit).stdout)
                mfu = j["gflops"] / 1e3 / peaks["fp32"] if peaks.get("fp32") else float("nan")
                return (f"{j['tokens_per_s']:.0f} tokens/s, {j['gflops'] / 1e3:.1f} TFLOP/s in fp32, MFU {100 * mfu:.1f}% "
                        "of the fp32 peak")
            check(f"training step, {preset}", train)
        for batch in (1, 64):
            check(f"decode, bench-m, batch {batch}",
                  lambda limit, b=batch: "{decode_tokens_per_s:.0f} tokens/s".format(**json.loads(run(
                      [bench, "--device", "cuda", "decode", "--preset", "bench-m", "--batch", str(b)], limit).stdout)))
        task, model = make_demo_model(r1_runner(build), tmp)
        prompts = os.path.join(task, "train.jsonl")
        steps = {}

        def r1_grpo(limit):
            out = os.path.join(tmp, "grpo")
            run([r1, "grpo", "--init", model, "--prompts", prompts, "--out", out, "--prompt-template", "plain", "--device",
                 "cuda", "--reward", "accuracy_math:1", "--steps", "4", "--prompts-per-step", "16", "--group-size", "8",
                 "--micro-batch", "32", "--lr", "1e-4", "--max-completion-tokens", "80", "--train-zero-advantage"], limit)
            with open(os.path.join(out, "metrics.jsonl")) as f:
                m = [json.loads(l) for l in f if '"grpo"' in l][1:]
            steps["r1"] = sum(r["step_s"] for r in m) / len(m)
            return f"{steps['r1']:.2f} s per step (steps 2-4)"
        check("GRPO step, demo configuration, r1", r1_grpo, limit=180)

        def trl(limit):
            j = json.loads(run([sys.executable, os.path.join(HERE, "trl_grpo.py"), model, prompts, "3", "16", "8", "80",
                                "4"], limit, env={"R1_TRL_DEVICE": "cuda"}).stdout)
            ratio = j["step_s"] / steps["r1"] if steps.get("r1") else float("nan")
            return f"{j['step_s']:.2f} s per step; r1 is {ratio:.1f}x faster"
        check("GRPO step, demo configuration, TRL GRPOTrainer", trl, limit=240)
    print(f"\n## GPU checks ({gpu})\n")
    print("| check | result | seconds | detail |")
    print("|---|---|---|---|")
    for name, status, seconds, detail in ROWS:
        print(f"| {name} | {status} | {seconds:.0f} | {detail} |")
    sys.exit(0 if all(r[1] == "pass" for r in ROWS) else 1)


if __name__ == "__main__":
    main()
