"""make bench (R1's architecture): training tokens/s of a tiny DeepSeek-V3 model (multi-head latent
attention + DeepSeekMoE) in r1 against transformers' DeepseekV3ForCausalLM (eager, float32, the
same threads) on the same configuration and batch, with a dense Llama of the same width beside it
for scale. Usage: run_moe.py BUILD_DIR"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from transformers import AutoModelForCausalLM, DeepseekV3Config, LlamaConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
THREADS = 2
SEQ, BATCH = 256, 8
COMMON = dict(vocab_size=4096, hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
              num_key_value_heads=4, max_position_embeddings=1024, rms_norm_eps=1e-6, initializer_range=0.02,
              tie_word_embeddings=True, bos_token_id=0, eos_token_id=1)
# The demo's ARCH=v3 shape (recipes/tiny-r1-zero.sh) at this vocabulary.
V3 = dict(q_lora_rank=64, kv_lora_rank=32, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
          n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, moe_intermediate_size=96,
          first_k_dense_replace=1, n_group=4, topk_group=2, norm_topk_prob=True, routed_scaling_factor=1.0,
          num_nextn_predict_layers=0)


def r1(build, *args):
    return subprocess.run([os.path.join(build, "r1"), *map(str, args)], capture_output=True, text=True, check=True)


def r1_tokens_per_s(build, tmp, name, config, tok, data):
    cfg = os.path.join(tmp, f"{name}.json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    out = os.path.join(tmp, name)
    r1(build, "pretrain", "--model-config", cfg, "--tokenizer", tok, "--data", data, "--out", out, "--steps", 12,
       "--seq-len", SEQ, "--batch-tokens", SEQ * BATCH, "--micro-batch", BATCH, "--threads", THREADS)
    m = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))][2:]  # skip warm-up steps
    return statistics.median(r["tokens_per_s"] for r in m)


def hf_tokens_per_s(config):
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    ids = torch.randint(0, COMMON["vocab_size"], (BATCH, SEQ + 1))
    times = []
    for step in range(8):
        t0 = time.perf_counter()
        opt.zero_grad()
        model(ids[:, :-1], labels=ids[:, :-1]).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= 2:
            times.append(time.perf_counter() - t0)
    return SEQ * BATCH / statistics.median(times)


def main():
    print(f"Machine: {describe()}")
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        docs = [open(os.path.join(ROOT, "docs", f)).read() for f in sorted(os.listdir(os.path.join(ROOT, "docs")))
                if f.endswith(".md")]
        with open(corpus, "w") as out:
            out.write("\n\n".join(docs) * 4)
        tok = os.path.join(tmp, "tok.json")
        r1(build, "tokenizer", "train", "--input", corpus, "--vocab-size", 4096, "--pad-to-multiple", 4096,
           "--special", "<|eos|>", "--out", tok)
        data = os.path.join(tmp, "data")
        r1(build, "data", "prepare", "--tokenizer", tok, "--input", corpus, "--eos", "<|eos|>", "--out", data)
        rows = []
        for name, arch, extra, hf_config in (
                ("dense Llama", "LlamaForCausalLM", {}, LlamaConfig(**COMMON)),
                ("DeepSeek-V3 (MLA + MoE)", "DeepseekV3ForCausalLM", V3, DeepseekV3Config(**COMMON, **V3))):
            ours = r1_tokens_per_s(build, tmp, arch, {"architectures": [arch], "hidden_act": "silu", **COMMON, **extra},
                                   tok, data)
            theirs = hf_tokens_per_s(hf_config)
            rows.append((name, ours, theirs))
        print(f"\n## Training a tiny model, r1 vs transformers (fp32, {THREADS} threads, batch {BATCH} x {SEQ})\n")
        print("Width 128, 4 layers, 4 heads, vocab 4096; the MoE model has the demo's ARCH=v3 shape: latent 32,")
        print("q LoRA 64, a dense first layer, then 8 routed experts (2 per token) + 1 shared. One step =")
        print("forward, backward, clip, AdamW.\n")
        print("| model | r1 tokens/s | transformers tokens/s | r1 / transformers |")
        print("|---|---|---|---|")
        for name, ours, theirs in rows:
            print(f"| {name} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.1f}x |")


if __name__ == "__main__":
    main()
