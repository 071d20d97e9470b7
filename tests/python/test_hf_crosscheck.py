"""r1's model against Hugging Face transformers itself, in both directions.

A random checkpoint written by `r1 model init` must load in transformers and give the same
logits; a random checkpoint saved by transformers must load in r1 with the same logits. Llama,
Qwen2 and Qwen3, GQA and MHA, tied and untied, every rope scaling. These tests fail (never skip)
when the reference libraries are missing.
"""
import json
import os
import unittest

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config

from r1test import TempDirCase, assert_greedy_matches_transformers, r1, write_json

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
    # Qwen3: per-head q/k norms, heads wider (32) or narrower (8) than hidden / heads (16).
    "qwen3_gqa_tied_wide_heads": ("Qwen3ForCausalLM", dict(num_key_value_heads=2, head_dim=32, tie_word_embeddings=True), 24),
    "qwen3_untied_bias": ("Qwen3ForCausalLM", dict(num_key_value_heads=4, head_dim=8, attention_bias=True,
                                                   tie_word_embeddings=False), 24),
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
    cls = {"Qwen2": Qwen2Config, "Qwen3": Qwen3Config}.get(arch[:5], LlamaConfig)
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


class Qwen3Generation(TempDirCase, unittest.TestCase):
    def test_greedy_generate_equals_transformers(self):
        """A transformers Qwen3 (norms perturbed so the q/k norms matter): `r1 generate` greedy on a
        batch of unequal prompts, through the KV cache, equal to its `generate`."""
        torch.manual_seed(11)
        config = hf_config("Qwen3ForCausalLM", dict(num_key_value_heads=2, head_dim=32, tie_word_embeddings=True,
                                                    initializer_range=0.3))
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.add_(torch.randn_like(p) * 0.3)
        model.save_pretrained(self.tmp)
        prompts = [[1, 5, 9, 33], [1, 7], [1, 100, 101, 102, 103, 104, 20]]
        assert_greedy_matches_transformers(self, self.tmp, model, prompts, eos=2, new_tokens=16, what="qwen3")


# The published config.json of each Qwen3 release (Qwen/Qwen3-*), and its model card's totals:
# parameters and parameters without the embedding, in billions.
QWEN3_COMMON = dict(architectures=["Qwen3ForCausalLM"], model_type="qwen3", vocab_size=151936, head_dim=128,
                    num_key_value_heads=8, max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6,
                    attention_bias=False, bos_token_id=151643, eos_token_id=151645, hidden_act="silu",
                    initializer_range=0.02, torch_dtype="bfloat16", use_sliding_window=False)
QWEN3 = {  # preset: (hidden, intermediate, layers, heads, tied), (card total, card non-embedding)
    "qwen3-0.6b": ((1024, 3072, 28, 16, True), ("0.6", "0.44")),
    "qwen3-1.7b": ((2048, 6144, 28, 16, True), ("1.7", "1.4")),
    "qwen3-4b": ((2560, 9728, 36, 32, True), ("4.0", "3.6")),
    "qwen3-8b": ((4096, 12288, 36, 32, False), ("8.2", "6.95")),
}


class Qwen3Presets(TempDirCase, unittest.TestCase):
    def test_presets_are_the_published_configs_with_their_sizes(self):
        for preset, ((hidden, inter, layers, heads, tied), (total, non_embedding)) in QWEN3.items():
            with self.subTest(preset):
                published = dict(QWEN3_COMMON, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                                 num_attention_heads=heads, tie_word_embeddings=tied)
                info = json.loads(r1("model", "info", "--preset", preset, "--json").stdout)
                for key, value in published.items():
                    if key != "use_sliding_window":
                        self.assertEqual(info[key], value, key)
                # transformers' own count of the published config (meta device: nothing allocated).
                d = os.path.join(self.tmp, preset)
                os.makedirs(d)
                write_json(os.path.join(d, "config.json"), published)
                with torch.device("meta"):
                    hf = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(d))
                count = sum(p.numel() for p in hf.parameters())
                self.assertEqual(info["parameters"], count)
                embedding = published["vocab_size"] * hidden
                self.assertEqual(f"{count / 1e9:.{len(total) - 2}f}", total)
                self.assertEqual(f"{(count - embedding * (1 if tied else 2)) / 1e9:.{len(non_embedding) - 2}f}",
                                 non_embedding)
                ours = json.loads(r1("model", "info", "--model", d, "--json").stdout)
                self.assertEqual(ours["parameters"], count)


if __name__ == "__main__":
    unittest.main()
