"""Shared by the memory benchmarks (run_checkpointing.py, run_zero.py, run_plan_check.py): a training
corpus made of the project's README (~2 MB) tokenized into shards, and r1 runs timed for their peak
resident memory."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def r1(build, *args, env=None):
    return subprocess.run([os.path.join(build, "r1"), *map(str, args)], capture_output=True, text=True, check=True,
                          env=env).stdout


def peak_mb(build, *args, env=None):
    """Runs r1 under /usr/bin/time; returns the peak resident memory of its largest process in MB (1e6)."""
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", os.path.join(build, "r1"), *map(str, args)],
                          capture_output=True, text=True, check=True, env=env)
    return int(proc.stderr.strip().splitlines()[-1]) * 1024 / 1e6


def readme_data(build, tmp, vocab_size):
    """Returns (tokenizer.json, token-shard directory) of the README corpus, in tmp."""
    corpus = os.path.join(tmp, "corpus.txt")
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    with open(corpus, "w") as f:
        f.write(text * max(1, 2_000_000 // len(text)))
    tok = os.path.join(tmp, "tok.json")
    r1(build, "tokenizer", "train", "--input", corpus, "--vocab-size", vocab_size, "--special", "<|eos|>", "--out", tok)
    data = os.path.join(tmp, "data")
    r1(build, "data", "prepare", "--tokenizer", tok, "--input", corpus, "--eos", "<|eos|>", "--out", data)
    return tok, data
