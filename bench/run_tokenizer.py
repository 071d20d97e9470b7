"""make bench (tokenizer part): r1's encode throughput beside the Hugging Face tokenizers
library (Rust core, PyPI) on the same text in the same run, and tokenizer training time.
Usage: run_tokenizer.py BUILD_DIR DATA_DIR (the build tree's data/, tokenizers unpacked)"""
import glob
import gzip
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

from tokenizers import Tokenizer


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402

def corpus(data, path, target_bytes):
    """Mixed prose and code, reproducible: GSM8K questions and answers, then libstdc++'s headers."""
    with open(path, "w") as out:
        n = 0
        for name in ("train.jsonl.gz", "test.jsonl"):
            opener = gzip.open if name.endswith(".gz") else open
            for line in opener(os.path.join(data, "gsm8k", name), "rt"):
                d = json.loads(line)
                n += out.write(d["question"] + "\n" + d["answer"] + "\n\n")
        for f in sorted(glob.glob("/usr/include/c++/12/**/*", recursive=True)):
            if n >= target_bytes:
                break
            if os.path.isfile(f):
                n += out.write(open(f, errors="replace").read())
    return path


def hf_encode(tokenizer_path, text_path, batch):
    tok = Tokenizer.from_file(tokenizer_path)
    text = open(text_path, encoding="utf-8").read()
    docs, pos = [], 0
    while pos < len(text):
        end = text.find("\n\n", pos)
        end = len(text) if end < 0 else end + 2
        docs.append(text[pos:end])
        pos = end
    t0 = time.perf_counter()
    encs = tok.encode_batch(docs, add_special_tokens=False) if batch else [tok.encode(d, add_special_tokens=False) for d in docs]
    s = time.perf_counter() - t0
    checksum, tokens = 1469598103934665603, 0
    for e in encs:
        for i in e.ids:
            checksum = ((checksum ^ i) * 1099511628211) % (1 << 64)
            tokens += 1
    return {"mb_per_s": len(text.encode()) / s / 1e6, "checksum": str(checksum), "tokens": tokens}


def main():
    print(f"Machine: {describe()}")
    build, data = sys.argv[1], sys.argv[2]
    threads = os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        text = corpus(data, os.path.join(tmp, "mixed.txt"), 20_000_000)
        mb = os.path.getsize(text) / 1e6
        print(f"\n## Tokenizer encode throughput ({mb:.1f} MB of GSM8K prose + libstdc++ headers)\n")
        print("| tokenizer | r1 1 thread MB/s | HF encode 1 thread MB/s | r1 / HF | r1 " f"{threads} threads | "
              f"HF encode_batch {threads} threads | r1 / HF | identical ids |")
        print("|---|---|---|---|---|---|---|---|")
        for name in ("deepseek_v3", "qwen3"):
            tj = os.path.join(data, "tokenizers", name, "tokenizer.json")
            run = lambda th: json.loads(subprocess.run(
                [os.path.join(build, "bench", "r1_bench_tokenizer"), "--tokenizer", tj, "--input", text,
                 "--threads", str(th)], capture_output=True, text=True, check=True).stdout)
            r1_single, r1_multi = run(1), run(threads)
            hf_single, hf_multi = hf_encode(tj, text, False), hf_encode(tj, text, True)
            same = r1_single["checksum"] == hf_single["checksum"] == r1_multi["checksum"] == hf_multi["checksum"]
            print(f"| {name} | {r1_single['mb_per_s']:.1f} | {hf_single['mb_per_s']:.1f} | "
                  f"{r1_single['mb_per_s'] / hf_single['mb_per_s']:.1f}x | {r1_multi['mb_per_s']:.1f} | "
                  f"{hf_multi['mb_per_s']:.1f} | {r1_multi['mb_per_s'] / hf_multi['mb_per_s']:.1f}x | {same} |")

        # The incremental trainer against the brute-force reference on a 2 MB slice.
        small = os.path.join(tmp, "small.txt")
        with open(small, "w") as out:
            out.write(open(text).read()[:2_000_000])
        print("\n| merges | distinct words | incremental s | brute-force s | speed-up | identical merges |")
        print("|---|---|---|---|---|---|")
        for merges in (100, 200, 400, 800):
            r = json.loads(subprocess.run([os.path.join(build, "bench", "r1_bench_tokenizer"), "--scaling", "--input",
                                           small, "--merges", str(merges)], capture_output=True, text=True,
                                          check=True).stdout)
            print(f"| {merges} | {r['words']} | {r['incremental_s']:.3f} | {r['brute_force_s']:.2f} | "
                  f"{r['brute_force_s'] / r['incremental_s']:.0f}x | {r['identical']} |")

        # Training: 100 MB, the mixed text repeated with its numbers re-drawn (seeded).
        big = os.path.join(tmp, "train100.txt")
        base, rng = open(text).read(), random.Random(0)
        with open(big, "w") as out:
            n = 0
            while n < 100_000_000:
                n += out.write(re.sub(r"\d+", lambda m: str(rng.randint(0, 10 ** len(m.group()))), base))
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", os.path.join(build, "r1"), "tokenizer", "train", "--input",
                               big, "--vocab-size", "32000", "--pattern", "deepseek-v3", "--out",
                               os.path.join(tmp, "t.json")], capture_output=True, text=True, check=True)
        s = time.perf_counter() - t0
        peak_mb = int(proc.stderr.strip().splitlines()[-1]) / 1024
        print(f"\nTraining a 32,000-token vocabulary on {os.path.getsize(big) / 1e6:.0f} MB (pattern deepseek-v3, "
              f"{threads} threads): {s:.1f} s, peak RSS {peak_mb:.0f} MB.")


if __name__ == "__main__":
    main()
