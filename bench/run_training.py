"""make bench (training part): r1 pretrain on this CPU for the tiny and small presets at 1 and 2
threads: tokens/s, MFU, peak memory, the data loader's share of the step; data parallel (2
processes x 1 thread vs 1 process x 2 threads); r1 data prepare
throughput; checkpoint save/load time for small. Usage: run_training.py BUILD_DIR"""
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
ROOT = os.path.dirname(HERE)


def r1(build, *args, env=None, timed=False):
    cmd = ["/usr/bin/time", "-f", "%M"] if timed else []
    proc = subprocess.run(cmd + [os.path.join(build, "r1"), *map(str, args)], capture_output=True, text=True,
                          check=True, env=env)
    return proc


def main():
    print(f"Machine: {describe()}")
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w") as out:  # the project's own text, ~10 MB
            names = ["README.md"] + [os.path.join("docs", f) for f in sorted(os.listdir(os.path.join(ROOT, "docs")))
                                     if f.endswith(".md")]  # docs/img holds the screenshots
            docs = [open(os.path.join(ROOT, d)).read() for d in names]
            text = "\n\n".join(docs)
            for _ in range(max(1, 10_000_000 // len(text))):
                out.write(text)
        tok = os.path.join(tmp, "tok.json")
        r1(build, "tokenizer", "train", "--input", corpus, "--vocab-size", "4096", "--pad-to-multiple", "4096",
           "--special", "<|eos|>", "--out", tok)
        data = os.path.join(tmp, "data")
        t0 = time.perf_counter()
        r1(build, "data", "prepare", "--tokenizer", tok, "--input", corpus, "--eos", "<|eos|>", "--out", data)
        prep = os.path.getsize(corpus) / 1e6 / (time.perf_counter() - t0)
        print(f"\n## Pretraining on this CPU (seq 256, batch 8 x 256 tokens)\n")
        print("| preset | precision | threads | tokens/s | MFU (vs 0.3 TFLOP/s) | data loader share | peak RSS MB |")
        print("|---|---|---|---|---|---|---|")
        runs = [(p, "fp32", t) for p in ("tiny", "small") for t in (1, 2)] + [("small", "bf16", 2)]
        for preset, precision, threads in runs:
                out = os.path.join(tmp, f"{preset}-{threads}-{precision}")
                steps = 12 if preset == "tiny" else 6
                proc = r1(build, "pretrain", "--preset", preset, "--tokenizer", tok, "--data", data, "--out", out,
                          "--steps", steps, "--seq-len", 256, "--batch-tokens", 2048, "--micro-batch", 8,
                          "--threads", threads, "--precision", precision, timed=True)
                rss = int(proc.stderr.strip().splitlines()[-1]) / 1024
                m = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))][2:]  # skip warm-up steps
                tps = statistics.median(r["tokens_per_s"] for r in m)
                mfu = statistics.median(r["mfu"] for r in m)
                share = sum(r["data_s"] for r in m) / sum(r["step_s"] for r in m)
                print(f"| {preset} | {precision} | {threads} | {tps:.0f} | {100 * mfu:.0f}% | {100 * share:.2f}% | "
                      f"{rss:.0f} |")
        print(f"\n## Data parallel: 2 processes x 1 thread vs 1 process x 2 threads (global batch 16 x 256)\n")
        print("| preset | 1 proc x 2 threads tok/s | 2 procs x 1 thread tok/s | ratio (2 procs / 1 proc) |")
        print("|---|---|---|---|")
        for preset, steps in (("tiny", 12), ("small", 6)):
            rates = []
            for launcher, micro, threads in (([], 16, 2), (["launch", "--nproc", 2, "--"], 8, 1)):
                out = os.path.join(tmp, f"dp-{preset}-{len(launcher)}")
                r1(build, *launcher, "pretrain", "--preset", preset, "--tokenizer", tok, "--data", data, "--out", out,
                   "--steps", steps, "--seq-len", 256, "--batch-tokens", 4096, "--micro-batch", micro,
                   "--threads", threads)
                m = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))][2:]
                rates.append(statistics.median(r["tokens_per_s"] for r in m))
            print(f"| {preset} | {rates[0]:.0f} | {rates[1]:.0f} | {rates[1] / rates[0]:.2f} |")
        small = os.path.join(tmp, "small-2-fp32")
        t0 = time.perf_counter()
        r1(build, "model", "init", "--preset", "small", "--out", os.path.join(tmp, "small-copy"))
        save = time.perf_counter() - t0
        ids = os.path.join(tmp, "ids.json")
        with open(ids, "w") as f:
            json.dump([[1, 2, 3]], f)
        t0 = time.perf_counter()
        r1(build, "model", "logits", "--model", small, "--input", ids, "--out", os.path.join(tmp, "l.safetensors"))
        load = time.perf_counter() - t0
        print(f"\nr1 data prepare: {prep:.1f} MB/s ({os.path.getsize(corpus) / 1e6:.0f} MB). 'small' "
              f"({os.path.getsize(os.path.join(small, 'model.safetensors')) / 1e6:.0f} MB of weights): init + save "
              f"{save:.2f} s, load + one forward {load:.2f} s (whole processes).")


if __name__ == "__main__":
    main()
