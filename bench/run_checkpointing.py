"""Training memory: peak resident memory and step time of r1 pretrain with the whole-vocabulary
logits (R1_NO_CHUNKED_LOGPROBS=1), with the head's log-probs in chunks (the default), and with
--checkpoint-activations on top; the same binary in the same run, on this CPU. Usage:
run_checkpointing.py BUILD_DIR"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def r1(build, *args, env=None):
    """Runs r1 under /usr/bin/time; returns its peak resident memory in MB."""
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", os.path.join(build, "r1"), *map(str, args)],
                          capture_output=True, text=True, check=True, env=env)
    return int(proc.stderr.strip().splitlines()[-1]) / 1024


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    print(f"Machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        text = open(os.path.join(ROOT, "README.md")).read()
        with open(corpus, "w") as f:
            f.write(text * max(1, 2_000_000 // len(text)))
        tok = os.path.join(tmp, "tok.json")
        r1(build, "tokenizer", "train", "--input", corpus, "--vocab-size", "4096", "--special", "<|eos|>", "--out", tok)
        data = os.path.join(tmp, "data")
        r1(build, "data", "prepare", "--tokenizer", tok, "--input", corpus, "--eos", "<|eos|>", "--out", data)
        print("\n## Training memory: r1 pretrain, fp32, 2 threads, 4 steps (step time: median of the last 2)\n")
        print("| preset | tokens per micro-batch | head's log-probs | activations | peak RSS MB | step s | "
              "peak RSS ratio | step time ratio |")
        print("|---|---|---|---|---|---|---|---|")
        whole = dict(os.environ, R1_NO_CHUNKED_LOGPROBS="1")
        variants = (("whole logits", "kept", whole, []), ("chunked", "kept", None, []),
                    ("chunked", "recomputed", None, ["--checkpoint-activations"]))
        for preset, seq, micro in (("small", 1024, 8), ("small", 2048, 8)):
            rows = []
            for i, (head, activations, env, extra) in enumerate(variants):
                out = os.path.join(tmp, f"{preset}-{seq}-{i}")
                rss = r1(build, "pretrain", "--preset", preset, "--tokenizer", tok, "--data", data, "--out", out,
                         "--steps", 4, "--seq-len", seq, "--batch-tokens", seq * micro, "--micro-batch", micro,
                         "--threads", 2, "--precision", "fp32", *extra, env=env)
                m = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))][2:]
                rows.append((rss, statistics.median(r["step_s"] for r in m)))
            for (rss, step), (head, activations, _, _) in zip(rows, variants):
                print(f"| {preset} | {seq * micro} | {head} | {activations} | {rss:.0f} | {step:.2f} | "
                      f"{rss / rows[0][0]:.2f} | {step / rows[0][1]:.2f} |")


if __name__ == "__main__":
    main()
