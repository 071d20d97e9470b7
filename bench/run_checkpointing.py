"""Training memory: peak resident memory and step time of r1 pretrain with the whole-vocabulary
logits (R1_NO_CHUNKED_LOGPROBS=1), with the head's log-probs in chunks (the default), and with
--checkpoint-activations on top; the same binary in the same run, on this CPU. Usage:
run_checkpointing.py BUILD_DIR"""
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402
from readme_data import peak_mb, readme_data  # noqa: E402


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    print(f"Machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        tok, data = readme_data(build, tmp, 4096)
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
                rss = peak_mb(build, "pretrain", "--preset", preset, "--tokenizer", tok, "--data", data, "--out", out,
                         "--steps", 4, "--seq-len", seq, "--batch-tokens", seq * micro, "--micro-batch", micro,
                         "--threads", 2, "--precision", "fp32", *extra, env=env)
                m = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))][2:]
                rows.append((rss, statistics.median(r["step_s"] for r in m)))
            for (rss, step), (head, activations, _, _) in zip(rows, variants):
                print(f"| {preset} | {seq * micro} | {head} | {activations} | {rss:.0f} | {step:.2f} | "
                      f"{rss / rows[0][0]:.2f} | {step / rows[0][1]:.2f} |")


if __name__ == "__main__":
    main()
