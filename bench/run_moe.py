"""make bench (R1's architecture): training tokens/s of a tiny DeepSeek-V3 model (multi-head latent
attention + DeepSeekMoE) in r1 against transformers' DeepseekV3ForCausalLM (eager, float32, the
same threads) on the same configuration and batch, with a dense Llama of the same width beside it
for scale. Then decoding: the latent cache against per-head keys and values (R1_NO_LATENT_CACHE=1)
on a 185M V3 model, and self-speculative decoding with the MTP module on the demo's V3 shape
trained here briefly (with --mtp-weight) on the demo's task. Usage: run_moe.py BUILD_DIR"""
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


# DeepSeek-V3's own routing at this width: 256 routed experts, 8 per token, 8 groups of which 4 are kept.
V3_ROUTING = dict(V3, n_routed_experts=256, num_experts_per_tok=8, moe_intermediate_size=32, n_group=8, topk_group=4)


def r1(build, *args):
    return subprocess.run([os.path.join(build, "r1"), *map(str, args)], capture_output=True, text=True, check=True)


# A V3 model large enough for decoding to read mostly weights (185M parameters, random weights).
V3_185M = dict(COMMON, vocab_size=32000, max_position_embeddings=4096, hidden_size=768, intermediate_size=2048, num_hidden_layers=8,
               num_attention_heads=12, num_key_value_heads=12, q_lora_rank=384, kv_lora_rank=256,
               qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=64, n_routed_experts=16,
               num_experts_per_tok=2, moe_intermediate_size=512, n_shared_experts=1, first_k_dense_replace=1,
               n_group=4, topk_group=2, norm_topk_prob=True, routed_scaling_factor=1.0, num_nextn_predict_layers=1,
               architectures=["DeepseekV3ForCausalLM"], hidden_act="silu")


def decode(build, model, batch, threads, *flags, env=None):
    out = subprocess.run([os.path.join(build, "bench", "r1_bench"), "--threads", str(threads), "decode", "--model",
                          model, "--batch", str(batch), *map(str, flags)], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def latent_cache_table(build, tmp):
    cfg = os.path.join(tmp, "v3_185m.json")
    with open(cfg, "w") as f:
        json.dump(V3_185M, f)
    model = os.path.join(tmp, "v3_185m")
    r1(build, "model", "init", "--config-json", cfg, "--out", model)
    print(f"\n## Decoding DeepSeek-V3: the latent cache vs per-head keys and values ({THREADS} threads)\n")
    print("185M parameters (8 layers x 768, 12 heads, latent 256 + rope 32, 16 experts of 512, 2 per token),")
    print("random weights, greedy, 32 new tokens after prompts of 64 to 2048 tokens; decode steps timed (the")
    print("prefill excluded). Per-head: R1_NO_LATENT_CACHE=1, the cache transformers keeps.\n")
    print("| prompt | batch | latent cache tokens/s | per-head cache tokens/s | latent / per-head | "
          "KV bytes per token, latent | per-head |")
    print("|---|---|---|---|---|---|---|")
    for prompt, batch in ((64, 1), (2048, 1), (64, 8), (2048, 8)):
        flags = ("--prompt", prompt, "--new-tokens", 32, "--prefill-prompt", 16)
        a = decode(build, model, batch, THREADS, *flags)
        b = decode(build, model, batch, THREADS, *flags, env={"R1_NO_LATENT_CACHE": "1"})
        print(f"| {prompt} | {batch} | {a['decode_tokens_per_s']:.1f} | {b['decode_tokens_per_s']:.1f} | "
              f"{a['decode_tokens_per_s'] / b['decode_tokens_per_s']:.2f}x | {a['kv_cache_bytes_per_token']:,} | "
              f"{b['kv_cache_bytes_per_token']:,} |", flush=True)
    return model


def speculative_table(build, tmp, big_model):
    """The demo's V3 shape with one MTP module, pretrained 200 steps on the demo's task (sums)."""
    task = os.path.join(tmp, "task")
    r1(build, "data", "arithmetic", "--out", task, "--seed", 1, "--ops", "add", "--corpus-documents", 30000,
       "--think-fraction", 0.3, "--test-min-carries", 2)
    tok = os.path.join(tmp, "arith_tok.json")
    r1(build, "tokenizer", "train", "--input", os.path.join(task, "corpus.jsonl"), "--field", "text",
       "--vocab-size", 320, "--pattern", "qwen2", "--special", "<|eos|>", "--out", tok)
    data = os.path.join(tmp, "arith_data")
    r1(build, "data", "prepare", "--tokenizer", tok, "--input", os.path.join(task, "corpus.jsonl"), "--eos",
       "<|eos|>", "--out", data)
    cfg = os.path.join(tmp, "v3_mtp.json")
    with open(cfg, "w") as f:
        json.dump({**COMMON, **V3, "vocab_size": 320, "max_position_embeddings": 256, "num_nextn_predict_layers": 1,
                   "architectures": ["DeepseekV3ForCausalLM"], "hidden_act": "silu"}, f)
    model = os.path.join(tmp, "v3_mtp")
    r1(build, "pretrain", "--model-config", cfg, "--tokenizer", tok, "--data", data, "--out", model, "--steps", 200,
       "--seq-len", 128, "--batch-tokens", 2048, "--micro-batch", 16, "--lr", "3e-3", "--warmup-steps", 20,
       "--schedule", "cosine", "--mtp-weight", 0.3, "--threads", THREADS)
    from tokenizers import Tokenizer
    encode = Tokenizer.from_file(tok).encode
    with open(os.path.join(task, "test.jsonl")) as f:
        prompts = [encode(json.loads(line)["prompt"]).ids for line in f][:64]
    prompts_file = os.path.join(tmp, "prompts.json")
    with open(prompts_file, "w") as f:
        json.dump(prompts, f)
    print("\n## Self-speculative decoding with the MTP module (greedy, 64 new tokens, decode steps timed)\n")
    print("Each step the module drafts the token after next; the model checks it in the same forward. The")
    print("output is the same as plain decoding (tests/python/test_deepseek.py). Trained: the demo's V3 shape")
    print("(2.4M parameters) with one MTP module, pretrained 200 steps with --mtp-weight 0.3 on the demo's")
    print("sums, prompted with held-out questions. 185M: random weights (its drafts are never right), which")
    print("gives the cost of a speculative step against a plain one where decoding reads weights.\n")
    print("| model | batch | threads | plain tokens/s | speculative tokens/s | speed-up | drafts accepted | "
          "decode steps plain / speculative |")
    print("|---|---|---|---|---|---|---|---|")
    runs = [("trained 2.4M", model, b, t, ("--prompts", prompts_file)) for b in (1, 8) for t in (1, 2)]
    runs += [("random 185M", big_model, 1, THREADS, ())]
    for name, path, batch, threads, extra in runs:
        flags = ("--new-tokens", 64, "--repeat", 3) + extra
        a = decode(build, path, batch, threads, *flags)
        b = decode(build, path, batch, threads, "--speculative", *flags)
        print(f"| {name} | {batch} | {threads} | {a['decode_tokens_per_s']:.1f} | {b['decode_tokens_per_s']:.1f} | "
              f"{b['decode_tokens_per_s'] / a['decode_tokens_per_s']:.2f}x | {100 * b['acceptance']:.0f}% | "
              f"{a['decode_steps']} / {b['decode_steps']} |", flush=True)


def r1_tokens_per_s(build, tmp, name, config, tok, data):
    cfg = os.path.join(tmp, f"{name}.json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    out = os.path.join(tmp, name)
    r1(build, "pretrain", "--model-config", cfg, "--tokenizer", tok, "--data", data, "--out", out, "--steps", 12,
       "--seq-len", SEQ, "--batch-tokens", SEQ * BATCH, "--micro-batch", BATCH, "--threads", THREADS)
    m = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))][2:]  # skip warm-up steps
    return statistics.median(r["tokens_per_s"] for r in m)


def hf_tokens_per_s(config, experts=None):
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    kwargs = {"experts_implementation": experts} if experts else {}
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager", **kwargs)
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
        for name, arch, extra in (("dense Llama", "LlamaForCausalLM", None),
                                  ("V3, the demo's experts (8, 2 per token)", "DeepseekV3ForCausalLM", V3),
                                  ("V3, V3's routing (256 experts, 8 per token)", "DeepseekV3ForCausalLM", V3_ROUTING)):
            ours = r1_tokens_per_s(build, tmp, f"model{len(rows)}",
                                   {"architectures": [arch], "hidden_act": "silu", **COMMON, **(extra or {})}, tok, data)
            if extra is None:
                rows.append((name, ours, hf_tokens_per_s(LlamaConfig(**COMMON)), None))
            else:
                config = DeepseekV3Config(**COMMON, **extra)
                rows.append((name, ours, hf_tokens_per_s(config, "eager"), hf_tokens_per_s(config, "grouped_mm")))
        print(f"\n## Training a tiny model, r1 vs transformers (fp32, {THREADS} threads, batch {BATCH} x {SEQ})\n")
        print("Width 128, 4 layers, 4 heads, vocab 4096; the MoE models have the demo's ARCH=v3 attention (latent")
        print("32, q LoRA 64) and a dense first layer, then the demo's 8 experts of 96 or V3's 256 of 32 (8 groups,")
        print("4 kept) + 1 shared. One step = forward, backward, clip, AdamW. transformers eager attention; its")
        print("experts eager (a loop over experts) or grouped_mm (its default).\n")
        print("| model | r1 tokens/s | transformers eager | r1 / eager | transformers grouped_mm | r1 / grouped_mm |")
        print("|---|---|---|---|---|---|")
        for name, ours, eager, grouped in rows:
            g = f"{grouped:.0f} | {ours / grouped:.1f}x" if grouped else "| "
            print(f"| {name} | {ours:.0f} | {eager:.0f} | {ours / eager:.1f}x | {g} |")
        big = latent_cache_table(build, tmp)
        speculative_table(build, tmp, big)


if __name__ == "__main__":
    main()
