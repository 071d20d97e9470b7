"""LoRA (--lora-rank): adapters trained by r1 load in PyPI's peft onto the transformers model with
r1's logits, an adapter made by peft (per-module ranks included) runs in r1 with peft's logits,
r1 model merge-lora equals peft's merge_and_unload, a resumed LoRA run equals an uninterrupted
one, and GRPO's reference under LoRA is the base model (KL 0 at the first step, then > 0)."""
import json
import os
import subprocess
import sys
import unittest

import numpy as np
from safetensors.numpy import load_file

from r1test import R1, TempDirCase, r1, read_json, read_jsonl, tiny_policy, write_json

IDS = [[5, 17, 42, 7, 99, 3, 250, 11], [60, 2, 8, 200, 31, 4, 77, 19]]




class Lora(TempDirCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.base, self.prompts = tiny_policy(self.tmp)
        corpus = os.path.join(self.tmp, "corpus.txt")
        self.data = os.path.join(self.tmp, "data")
        r1("data", "prepare", "--tokenizer", os.path.join(self.base, "tokenizer.json"), "--input", corpus, "--eos",
           "<|eos|>", "--out", self.data)
        self.ids = os.path.join(self.tmp, "ids.json")
        write_json(self.ids, IDS)

    def train(self, out, steps, *extra):
        return r1("pretrain", "--init", self.base, "--tokenizer", os.path.join(self.base, "tokenizer.json"), "--data",
                  self.data, "--out", out, "--steps", steps, "--seq-len", 32, "--batch-tokens", 128, "--micro-batch", 4,
                  "--lr", "1e-2", "--seed", 3, "--threads", 1, "--lora-rank", 4, "--lora-alpha", 8, *extra)

    def r1_logits(self, model):
        out = os.path.join(self.tmp, "logits.safetensors")
        r1("model", "logits", "--model", model, "--input", self.ids, "--out", out, "--threads", 1)
        return load_file(out)["logits"]

    def hf_logits(self, model):
        import torch
        with torch.no_grad():
            return model(torch.tensor(IDS)).logits.float().numpy()

    def base_model(self):
        from transformers import AutoModelForCausalLM
        return AutoModelForCausalLM.from_pretrained(self.base, torch_dtype="float32").eval()

    def test_r1_adapters_load_in_peft_and_merge(self):
        from peft import PeftModel
        run = os.path.join(self.tmp, "run")
        self.train(run, 6, "--lora-targets", "all-linear")
        self.assertEqual(sorted(f for f in os.listdir(run) if "adapter" in f or f.startswith("model")),
                         ["adapter_config.json", "adapter_model.safetensors"])  # no copy of the base
        config = read_json(os.path.join(run, "adapter_config.json"))
        self.assertEqual((config["peft_type"], config["r"], config["lora_alpha"], config["target_modules"]),
                         ("LORA", 4, 8, "all-linear"))
        tensors = load_file(os.path.join(run, "adapter_model.safetensors"))
        layers = read_json(os.path.join(self.base, "config.json"))["num_hidden_layers"]
        self.assertEqual(len(tensors), 2 * 7 * layers)  # q, k, v, o, gate, up, down: A and B each
        self.assertIn("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", tensors)
        self.assertGreater(float(np.abs(tensors["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"]).max()), 0)
        mine = self.r1_logits(run)
        base = self.hf_logits(self.base_model())
        self.assertGreater(float(np.abs(mine - base).max()), 1e-3)  # the adapters moved the model
        peft_model = PeftModel.from_pretrained(self.base_model(), run).eval()
        theirs = self.hf_logits(peft_model)
        self.assertLess(float(np.abs(mine - theirs).max()), 1e-4)
        merged = os.path.join(self.tmp, "merged")
        r1("model", "merge-lora", "--adapter", run, "--out", merged)
        self.assertTrue(os.path.exists(os.path.join(merged, "tokenizer.json")))
        merged_theirs = self.hf_logits(peft_model.merge_and_unload())
        self.assertLess(float(np.abs(self.r1_logits(merged) - merged_theirs).max()), 1e-4)

    def test_a_peft_adapter_runs_in_r1(self):
        import torch
        from peft import LoraConfig, get_peft_model
        torch.manual_seed(0)
        config = LoraConfig(r=3, lora_alpha=6, target_modules=["q_proj", "v_proj", "down_proj"],
                            rank_pattern={"down_proj": 2}, alpha_pattern={"v_proj": 12})
        model = get_peft_model(self.base_model(), config)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.2)  # a trained-looking adapter (B = 0 would change nothing)
        adapter = os.path.join(self.tmp, "peft-adapter")
        model.save_pretrained(adapter)
        self.assertLess(float(np.abs(self.r1_logits(adapter) - self.hf_logits(model.eval())).max()), 1e-4)
        # A file that does not fit the model is a clear error, not a silent no-op.
        bad = read_json(os.path.join(adapter, "adapter_config.json"))
        bad["target_modules"] = ["q_proj", "nonexistent_proj"]
        write_json(os.path.join(adapter, "adapter_config.json"), bad)
        proc = r1("model", "logits", "--model", adapter, "--input", self.ids, "--out", os.path.join(self.tmp, "x"),
                  check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("nonexistent_proj", proc.stderr)

    def test_resumed_lora_run_equals_an_uninterrupted_one(self):
        whole, halves = os.path.join(self.tmp, "whole"), os.path.join(self.tmp, "halves")
        self.train(whole, 6)
        self.train(halves, 3)
        self.train(halves, 6, "--resume")
        a = load_file(os.path.join(whole, "adapter_model.safetensors"))
        b = load_file(os.path.join(halves, "adapter_model.safetensors"))
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)

    def test_grpo_reference_is_the_base_without_adapters(self):
        reward = os.path.join(self.tmp, "reward.py")
        with open(reward, "w") as f:
            f.write("import json, sys\nc = json.load(sys.stdin)['completion']\nprint(c.count('a') / max(1, len(c)))\n")
        out = os.path.join(self.tmp, "grpo")
        r1("grpo", "--init", self.base, "--prompts", self.prompts, "--out", out, "--prompt-template", "plain",
           "--steps", 3, "--prompts-per-step", 4, "--group-size", 4, "--micro-batch", 16, "--max-completion-tokens", 8,
           "--lr", "2e-2", "--beta", "0.05", "--reward", "external", "--reward-command", f"{sys.executable} {reward}",
           "--threads", 1, "--lora-rank", 8, "--lora-alpha", 16)
        metrics = read_jsonl(os.path.join(out, "metrics.jsonl"))
        self.assertEqual(metrics[0]["kl"], 0)  # B = 0: the policy is the base at the first step
        self.assertGreater(metrics[-1]["kl"], 0)
        self.assertTrue(os.path.exists(os.path.join(out, "adapter_model.safetensors")))
        self.assertFalse(os.path.exists(os.path.join(out, "trainer_state", "reference")))  # no copy of the base

    def test_bad_lora_flags(self):
        for extra, message in ((["--lora-targets", "q_proj,nope"], "nope"), (["--lora-targets", "q_proj,,v_proj"], "empty")):
            proc = subprocess.run([R1, "pretrain", "--init", self.base, "--tokenizer",
                                   os.path.join(self.base, "tokenizer.json"), "--data", self.data, "--out",
                                   os.path.join(self.tmp, "bad"), "--steps", "1", "--lora-rank", "4", *extra],
                                  capture_output=True, text=True)
            self.assertNotEqual(proc.returncode, 0, extra)
            self.assertIn(message, proc.stderr, extra)


if __name__ == "__main__":
    unittest.main()
