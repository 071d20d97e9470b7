"""Shared by the GRPO and distillation benchmarks: the demo's task and its 0.9M-parameter model
(the configuration of recipes/tiny-r1-zero.sh) at random initialisation, in a temporary directory."""
import json
import os
import subprocess

DEMO_MODEL = {"architectures": ["LlamaForCausalLM"], "vocab_size": 320, "hidden_size": 128,
              "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
              "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "initializer_range": 0.02,
              "tie_word_embeddings": True, "hidden_act": "silu"}


def r1_runner(build):
    """run(*args) runs build/r1 and returns the CompletedProcess (raising on failure)."""
    r1 = os.path.join(build, "r1")

    def run(*args):
        return subprocess.run([r1, *map(str, args)], capture_output=True, text=True, check=True)
    return run


def make_demo_model(run, tmp):
    """Writes tmp/task (r1 data arithmetic) and tmp/model (tokenizer.json inside); returns both."""
    from tokenizers import Tokenizer
    task = os.path.join(tmp, "task")
    run("data", "arithmetic", "--out", task, "--seed", 1, "--corpus-documents", 3000)
    tok = os.path.join(tmp, "tokenizer.json")
    run("tokenizer", "train", "--input", os.path.join(task, "corpus.jsonl"), "--field", "text", "--vocab-size", 320,
        "--pattern", "qwen2", "--special", "<|eos|>", "--out", tok)
    cfg = os.path.join(tmp, "config.json")
    with open(cfg, "w") as f:
        json.dump(dict(DEMO_MODEL, eos_token_id=Tokenizer.from_file(tok).token_to_id("<|eos|>")), f)
    model = os.path.join(tmp, "model")
    run("model", "init", "--config-json", cfg, "--out", model, "--seed", 1)
    os.replace(tok, os.path.join(model, "tokenizer.json"))
    return task, model
