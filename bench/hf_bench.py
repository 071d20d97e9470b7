"""The Python side of bench/run.py: the same measurements in PyTorch eager with transformers'
LlamaForCausalLM (same torch, same thread count), one per process, JSON on stdout."""
import argparse
import json
import resource
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

# The bench-s / bench-m presets of src/model/presets.cpp.
SHAPES = {
    "bench-s": dict(vocab_size=32000, hidden_size=288, intermediate_size=768, num_hidden_layers=6,
                    num_attention_heads=6, num_key_value_heads=6, max_position_embeddings=256),
    "bench-m": dict(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                    num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=1024),
}


def model_for(preset):
    cfg = LlamaConfig(**SHAPES[preset], tie_word_embeddings=True, rms_norm_eps=1e-6, initializer_range=0.006,
                      hidden_act="silu")
    return LlamaForCausalLM(cfg).float()


def train(preset, batch, seq, steps):
    model = model_for(preset)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    data = torch.randint(0, model.config.vocab_size, (batch, seq + 1))
    x, y = data[:, :-1], data[:, 1:]

    def step():
        opt.zero_grad()
        logits = model(x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return {"tokens_per_s": batch * seq * steps / (time.perf_counter() - t0)}


def decode(preset, batch, prompt, new_tokens, model_dir=None, prefill_prompt=0, dtype="float32"):
    if model_dir:
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=getattr(torch, dtype)).eval()
    else:
        model = model_for(preset).to(getattr(torch, dtype)).eval()
    ids = torch.randint(0, model.config.vocab_size, (batch, prompt))
    kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    with torch.inference_mode():
        model.generate(ids, max_new_tokens=4, min_new_tokens=4, **kw)
        t0 = time.perf_counter()
        out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
        s = time.perf_counter() - t0
    result = {"tokens_per_s": (out.shape[1] - prompt) * batch / s}
    if prefill_prompt:
        ids = torch.randint(0, model.config.vocab_size, (batch, prefill_prompt))
        with torch.inference_mode():
            t0 = time.perf_counter()
            model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kw)
            result["prefill_tokens_per_s"] = batch * prefill_prompt / (time.perf_counter() - t0)
    return result


def matvec_ceiling(preset):
    """Decode's memory-bandwidth ceiling: one token's weight matrix-vector products alone."""
    c = SHAPES[preset]
    h, i, d = c["hidden_size"], c["intermediate_size"], c["hidden_size"] // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * d
    shapes = [(h, h), (kv, h), (kv, h), (h, h), (i, h), (i, h), (h, i)] * c["num_hidden_layers"] + [(c["vocab_size"], h)]
    ws = [torch.randn(s) for s in shapes]
    xs = {h: torch.randn(1, h), i: torch.randn(1, i)}
    with torch.inference_mode():
        def token():
            for w in ws:
                torch.nn.functional.linear(xs[w.shape[1]], w)
        token()
        t0 = time.perf_counter()
        for _ in range(10):
            token()
    return {"tokens_per_s": 10 / (time.perf_counter() - t0)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["train", "decode", "matvec"])
    p.add_argument("--preset", default="bench-s")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--prompt", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default=None, help="HF model directory (decode; default: random --preset weights)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="weights (decode)")
    p.add_argument("--prefill-prompt", type=int, default=0, help="also measure prefill of this prompt length")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.what == "train":
        r = train(a.preset, a.batch, a.seq, a.steps)
    elif a.what == "decode":
        r = decode(a.preset, a.batch, a.prompt, a.new_tokens, a.model, a.prefill_prompt, a.dtype)
    else:
        r = matvec_ceiling(a.preset)
    r["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    r["threads"] = a.threads
    print(json.dumps(r))


if __name__ == "__main__":
    main()
