"""r1's model against Hugging Face transformers itself, in both directions.

A random checkpoint written by `r1 model init` must load in transformers and give the same
logits; a random checkpoint saved by transformers must load in r1 with the same logits. Llama
and Qwen2, GQA and MHA, tied and untied, every rope scaling. These tests fail (never skip)
when the reference libraries are missing.
"""
import json
import os
import unittest

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

from r1test import TempDirCase, r1, write_json

# R1_TEST_DEVICE / R1_TEST_DTYPE run r1's side on a GPU or in bfloat16 (the GPU check); the
# reference stays transformers in float32 on the CPU, so half precision gets a looser bound.
DEVICE = os.environ.get("R1_TEST_DEVICE", "cpu")
DTYPE = os.environ.get("R1_TEST_DTYPE", "float32")
TOL = 1e-4 if DTYPE == "float32" else 0.05  # half precision: relative to the largest logit
BASE = dict(vocab_size=211, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=10000.0, initializer_range=0.2,
            bos_token_id=1, eos_token_id=2, hidden_act="silu")

# name -> (architecture, overrides, sequence length)
CASES = {
    "llama_mha_untied": ("LlamaForCausalLM", dict(num_key_value_heads=4, tie_word_embeddings=False), 24),
    "llama_gqa_tied": ("LlamaForCausalLM", dict(num_key_value_heads=2, tie_word_embeddings=True), 24),
    "llama_attention_bias": ("LlamaForCausalLM", dict(num_key_value_heads=2, attention_bias=True), 24),
    "qwen2_gqa_untied": ("Qwen2ForCausalLM", dict(num_key_value_heads=2, tie_word_embeddings=False), 24),
    "qwen2_mha_tied": ("Qwen2ForCausalLM", dict(num_key_value_heads=4, tie_word_embeddings=True), 24),
    "llama_linear": ("LlamaForCausalLM", dict(num_key_value_heads=2, rope_theta=100000.0,
                                              rope_scaling={"rope_type": "linear", "factor": 4.0}), 24),
    # Dynamic NTK only changes anything past max_position_embeddings: run 40 tokens on 16.
    "llama_dynamic": ("LlamaForCausalLM", dict(num_key_value_heads=2, max_position_embeddings=16,
                                               rope_scaling={"rope_type": "dynamic", "factor": 2.0}), 40),
    "llama_yarn": ("LlamaForCausalLM", dict(num_key_value_heads=2, rope_scaling={
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}), 40),
    "qwen2_yarn_mscale": ("Qwen2ForCausalLM", dict(num_key_value_heads=2, rope_scaling={
        "rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 8, "mscale": 0.707,
        "mscale_all_dim": 1.0, "beta_fast": 16.0, "beta_slow": 2.0}), 40),
    "llama_llama3": ("LlamaForCausalLM", dict(num_key_value_heads=2, rope_theta=500000.0, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16}), 40),
}


def hf_config(arch, overrides):
    cls = Qwen2Config if arch.startswith("Qwen2") else LlamaConfig
    return cls(architectures=[arch], **{**BASE, **overrides})


def hf_logits(model_dir, ids, dtype=torch.float32):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, local_files_only=True)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.float()


def random_ids(n_rows, length, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n_rows, length), generator=g).tolist()


class CrossCheck(TempDirCase, unittest.TestCase):
    def r1_logits(self, model_dir, ids, mode="full", dtype=DTYPE):
        ids_path = os.path.join(self.tmp, "ids.json")
        out = os.path.join(self.tmp, f"logits_{mode}.safetensors")
        write_json(ids_path, ids)
        r1("model", "logits", "--model", model_dir, "--input", ids_path, "--out", out, "--mode", mode,
           "--dtype", dtype, "--device", DEVICE, "--threads", 1)
        return load_file(out)["logits"]

    def assert_close(self, a, b, what):
        self.assertEqual(tuple(a.shape), tuple(b.shape), what)
        diff = (a - b).abs().max().item()
        bound = TOL if DTYPE == "float32" else TOL * b.abs().max().item()
        self.assertLess(diff, bound, f"{what}: max abs diff {diff}")

    def test_r1_checkpoints_load_in_transformers(self):
        for name, (arch, overrides, length) in CASES.items():
            with self.subTest(name):
                cfg_path = os.path.join(self.tmp, f"{name}.json")
                cfg = hf_config(arch, overrides).to_dict()
                write_json(cfg_path, cfg)
                model_dir = os.path.join(self.tmp, name)
                r1("model", "init", "--config-json", cfg_path, "--out", model_dir, "--seed", 3)
                ids = random_ids(2, length, BASE["vocab_size"], seed=len(name))
                want = hf_logits(model_dir, ids)
                self.assertGreater(want.std().item(), 0.1, "logits too flat for a meaningful comparison")
                self.assert_close(self.r1_logits(model_dir, ids), want, f"{name} full")
                if "dynamic" not in name:  # dynamic NTK rescales with the length seen so far, in HF too
                    self.assert_close(self.r1_logits(model_dir, ids, "cached"), want, f"{name} kv-cache")

    def test_transformers_checkpoints_load_in_r1(self):
        for name, (arch, overrides, length) in CASES.items():
            with self.subTest(name):
                torch.manual_seed(len(name))
                model = AutoModelForCausalLM.from_config(hf_config(arch, overrides), dtype=torch.float32)
                with torch.no_grad():  # non-trivial norms and biases so they are checked too
                    for pname, p in model.named_parameters():
                        if "norm" in pname or "bias" in pname:
                            p.add_(torch.randn_like(p) * 0.1)
                model_dir = os.path.join(self.tmp, name)
                model.save_pretrained(model_dir)
                ids = random_ids(2, length, BASE["vocab_size"], seed=7)
                with torch.no_grad():
                    want = model(torch.tensor(ids)).logits.float()
                self.assert_close(self.r1_logits(model_dir, ids), want, f"{name} full")

    def test_half_precision_checkpoints_from_transformers(self):
        for dtype in (torch.bfloat16, torch.float16):
            with self.subTest(str(dtype)):
                torch.manual_seed(0)
                model = AutoModelForCausalLM.from_config(hf_config("Qwen2ForCausalLM", dict(num_key_value_heads=2)),
                                                         dtype=torch.float32).to(dtype)
                model_dir = os.path.join(self.tmp, str(dtype))
                model.save_pretrained(model_dir)
                ids = random_ids(1, 16, BASE["vocab_size"], seed=1)
                # Reference: the same stored weights, computed in float32.
                self.assert_close(self.r1_logits(model_dir, ids), hf_logits(model_dir, ids), f"{dtype} weights")

    def test_safetensors_package_reads_r1_files(self):
        model_dir = os.path.join(self.tmp, "bf16")
        cfg_path = os.path.join(self.tmp, "cfg.json")
        write_json(cfg_path, hf_config("LlamaForCausalLM", dict(num_key_value_heads=2)).to_dict())
        r1("model", "init", "--config-json", cfg_path, "--out", model_dir, "--dtype", "bfloat16")
        path = os.path.join(model_dir, "model.safetensors")
        with safe_open(path, framework="pt") as f:
            self.assertEqual(f.metadata(), {"format": "pt"})
            keys = set(f.keys())
        tensors = load_file(path)
        self.assertTrue(all(t.dtype == torch.bfloat16 for t in tensors.values()))
        hf = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.bfloat16)
        self.assertEqual(keys, set(hf.state_dict().keys()))
        for k, v in hf.state_dict().items():
            self.assertTrue(torch.equal(v, tensors[k]), k)
        with open(os.path.join(model_dir, "config.json")) as f:
            self.assertEqual(json.load(f)["torch_dtype"], "bfloat16")


if __name__ == "__main__":
    unittest.main()
