"""r1's GRPO advantages and loss against TRL's GRPOTrainer (PyPI `trl`, pinned in
scripts/requirements-extra.txt), fed identical tensors: the rewards go through TRL's own
_generate_and_score_completions (a real trainer on a tiny model, the reward function returning the
test's rewards), and the per-token log-probs, old and reference log-probs and masks through its
_compute_loss. Loss values and d loss / d logp must agree for every loss type both implement
(grpo, bnpo = token-level, dr_grpo, dapo), each reward scaling, clip-higher, sequence-level
importance (GSPO), beta > 0 and the KL bias correction (on and off). The rollout correction's weights
(--rollout-correction, TRL's vllm_importance_sampling_correction) come out of TRL's own
_generate_and_score_completions, given the same sampled and trained log-probs through a stand-in
generator, in each of its four modes, and then weight the same loss."""
import os
import subprocess
import tempfile
import unittest
import warnings

import torch
from safetensors.torch import load_file, save_file

PROBE = os.environ.get("R1_GRPO_PROBE", "")
# TRL loss_type -> r1 --loss-agg
LOSS_TYPES = {"grpo": "seq-mean-token-mean", "bnpo": "token-mean", "dapo": "token-mean",
              "dr_grpo": "seq-mean-token-sum-norm"}
P, G, T = 3, 4, 7


def tiny_trainer(tmp):
    """A real GRPOTrainer on CPU around a 1-layer random Llama; its reward function hands out the
    rewards stored in `trainer.next_rewards`."""
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(["the cat sat on a mat 123"] * 20,
                            trainers.BpeTrainer(vocab_size=280, special_tokens=["<|eos|>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|eos|>", pad_token="<|eos|>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         eos_token_id=0, pad_token_id=0))
    dataset = Dataset.from_list([{"prompt": f"the cat {i}"} for i in range(P)])
    holder = {}

    def reward_fn(prompts, completions, **kwargs):
        return holder["rewards"]

    args = GRPOConfig(output_dir=os.path.join(tmp, "trl"), num_generations=G, per_device_train_batch_size=P * G,
                      max_completion_length=T, beta=0.0, use_cpu=True, report_to=[], save_strategy="no")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = GRPOTrainer(model=model, reward_funcs=reward_fn, args=args, train_dataset=dataset,
                              processing_class=hf_tok)
    trainer.rows = [dataset[i] for i in range(P) for _ in range(G)]
    trainer.holder = holder
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    return trainer


class TrlAgreement(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not PROBE or not os.path.exists(PROBE):
            raise RuntimeError("R1_GRPO_PROBE must point at the built grpo_loss_probe (ctest sets it)")
        cls._tmp = tempfile.TemporaryDirectory(prefix="r1trl_")
        cls.tmp = cls._tmp.name
        cls.trainer = tiny_trainer(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def tensors(self, seed):
        g = torch.Generator().manual_seed(seed)
        rewards = torch.rand(P, G, generator=g, dtype=torch.float64).round(decimals=1)
        rewards[1] = 0.5  # a group with equal rewards: advantages 0, never NaN
        lengths = torch.randint(1, T + 1, (P * G,), generator=g)
        mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).to(torch.float64)
        old = -torch.rand(P * G, T, generator=g, dtype=torch.float64) * 3
        logp = old + torch.randn(P * G, T, generator=g, dtype=torch.float64) * 0.3  # off-policy: clipping happens
        ref = old + torch.randn(P * G, T, generator=g, dtype=torch.float64) * 0.2
        return {"rewards": rewards, "logp": logp, "old_logp": old, "ref_logp": ref, "mask": mask}

    def r1(self, t, loss_agg, scale, importance, beta, eps, eps_high, correction, **extra):
        src, dst = os.path.join(self.tmp, "in.safetensors"), os.path.join(self.tmp, "out.safetensors")
        save_file({k: v.contiguous() for k, v in t.items()}, src)
        subprocess.run([PROBE, src, dst, loss_agg, scale, importance, str(beta), str(eps), str(eps_high), str(T),
                        str(int(correction)), *(f"{k.replace('_', '-')}={v}" for k, v in extra.items())],
                       check=True)
        # Copies: the next probe run rewrites the same file, and the loaded tensors may still map it.
        return {k: v.clone() for k, v in load_file(dst).items()}

    def trl_advantages(self, t, scale):
        tr = self.trainer
        tr.scale_rewards, tr.beta = scale, 0.0  # beta > 0 here would make TRL score the rollouts with a reference
        tr.holder["rewards"] = t["rewards"].flatten().tolist()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tr._generate_and_score_completions(tr.rows)["advantages"].to(torch.float64)

    def trl_rollout_weights(self, t, mode, clip_min, clip_max):
        """TRL's importance_sampling_ratio, computed by _generate_and_score_completions itself: a
        stand-in generator returns completions of the mask's lengths with the sampled log-probs, and the
        trained log-probs stand in for its forward."""
        tr = self.trainer
        lengths = t["mask"].sum(1).long().tolist()
        saved = tr._generate, tr._get_per_token_logps_and_entropies, tr.use_vllm
        tr._generate = lambda prompts: ([[1, 2]] * len(prompts), [[5] * n for n in lengths], None,
                                        ["x"] * len(prompts),
                                        [t["sampled_logp"][i, :n].tolist() for i, n in enumerate(lengths)], {}, None,
                                        None)
        tr._get_per_token_logps_and_entropies = lambda *a, **k: (t["old_logp"].clone(), None, None)
        tr.use_vllm, tr.vllm_importance_sampling_correction = True, True
        tr.vllm_importance_sampling_mode = mode
        tr.vllm_importance_sampling_clip_min, tr.vllm_importance_sampling_clip_max = clip_min, clip_max
        tr.scale_rewards, tr.beta = "group", 0.0
        tr.holder["rewards"] = t["rewards"].flatten().tolist()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = tr._generate_and_score_completions(tr.rows)
        finally:
            tr._generate, tr._get_per_token_logps_and_entropies, tr.use_vllm = saved
        self.assertTrue(torch.equal(out["completion_mask"].to(torch.float64), t["mask"]))
        return out["importance_sampling_ratio"].to(torch.float64).expand(P * G, T)

    def trl_loss(self, t, advantages, loss_type, importance, beta, eps, eps_high, correction, rollout_weight=None,
                 off_policy=None, delta=None):
        tr = self.trainer
        tr.off_policy_mask_threshold, tr.args.delta = off_policy, delta
        tr.loss_type, tr.beta, tr.epsilon_low, tr.epsilon_high = loss_type, beta, eps, eps_high
        tr.importance_sampling_level, tr.max_completion_length = importance, T
        tr.args.use_bias_correction_kl = correction
        logp = t["logp"].clone().requires_grad_(True)
        tr._get_per_token_logps_and_entropies = lambda *a, **k: (logp, torch.zeros_like(logp), None)
        inputs = {"prompt_ids": torch.zeros(P * G, 1, dtype=torch.long), "prompt_mask": torch.ones(P * G, 1),
                  "completion_ids": torch.zeros(P * G, T, dtype=torch.long), "completion_mask": t["mask"],
                  "advantages": advantages, "old_per_token_logps": t["old_logp"],
                  "ref_per_token_logps": t["ref_logp"], "num_items_in_batch": t["mask"].sum()}
        tr.use_vllm = rollout_weight is not None  # what makes _compute_loss apply the weights
        tr.vllm_importance_sampling_correction = True
        if rollout_weight is not None:
            inputs["importance_sampling_ratio"] = rollout_weight
        if off_policy is not None:
            inputs["sampling_per_token_logps"] = t["sampled_logp"]
        try:
            loss = tr._compute_loss(tr.model, inputs)
        finally:
            tr.use_vllm = False
        loss.backward()
        return loss.detach(), logp.grad

    def check(self, loss_type, scale="group", importance="token", beta=0.0, eps=0.2, eps_high=0.2, correction=False,
              seed=0):
        t = self.tensors(seed)
        ours = self.r1(t, LOSS_TYPES[loss_type], scale, importance, beta, eps, eps_high, correction)
        what = f"{loss_type} scale={scale} importance={importance} beta={beta} eps={eps}/{eps_high} corr={correction}"
        adv = self.trl_advantages(t, scale)  # TRL computes them in float32
        torch.testing.assert_close(ours["advantages"], adv, rtol=1e-6, atol=1e-6, msg=what)
        self.assertEqual(adv.view(P, G)[1].abs().max().item(), 0.0)
        # The loss from identical float64 inputs, so any difference is the formula's.
        loss, grad = self.trl_loss(t, ours["advantages"], loss_type, importance, beta, eps, eps_high, correction)
        torch.testing.assert_close(ours["loss"][0], loss, rtol=1e-6, atol=1e-12, msg=what)
        torch.testing.assert_close(ours["grad_logp"], grad, rtol=1e-6, atol=1e-12, msg=what)
        self.assertGreater(grad.abs().sum().item(), 0)

    def test_loss_types(self):
        for loss_type in LOSS_TYPES:
            self.check(loss_type, seed=1)

    def test_reward_scaling(self):
        for scale in ("group", "batch", "none"):
            self.check("grpo", scale=scale, seed=2)

    def test_clip_higher_and_kl(self):
        for loss_type in LOSS_TYPES:
            self.check(loss_type, eps=0.2, eps_high=0.28, beta=0.04, seed=3)

    def test_kl_bias_correction(self):  # DeepSeek-V3.2's unbiased KL gradient, TRL's default
        for importance in ("token", "sequence"):
            self.check("grpo", beta=0.04, importance=importance, correction=True, seed=6)
            self.check("bnpo", beta=0.001, importance=importance, correction=True, seed=7)

    def test_rollout_correction(self):
        for mode, clip_min, clip_max, loss_type in (("token_truncate", None, 2.0, "grpo"), ("token_mask", 0.5, 2.0, "bnpo"),
                                                    ("sequence_truncate", 0.8, 3.0, "dr_grpo"),
                                                    ("sequence_mask", None, 3.0, "grpo")):
            t = self.tensors(8)
            g = torch.Generator().manual_seed(9)
            # The sampler's log-probs, as float32 like TRL's list -> tensor conversion makes them.
            t["sampled_logp"] = (t["old_logp"] + torch.randn(P * G, T, generator=g, dtype=torch.float64) * 0.4
                                 ).float().double()
            ours = self.r1(t, LOSS_TYPES[loss_type], "group", "token", 0.04, 0.2, 0.28, False,
                           rollout_correction=mode.replace("_", "-"), rollout_min=clip_min or 0.0, rollout_max=clip_max)
            theirs = self.trl_rollout_weights(t, mode, clip_min, clip_max)
            m = t["mask"].bool()
            torch.testing.assert_close(ours["rollout_weight"][m], theirs[m], rtol=1e-9, atol=1e-12, msg=mode)
            # The bounds bind somewhere (else the modes would not be told apart), and weights in between vary.
            bound = (theirs[m] == 0) if mode.endswith("mask") else (theirs[m] == clip_max) | (theirs[m] == (clip_min or 0))
            self.assertTrue(bound.any(), mode)
            self.assertTrue(((theirs[m] != 1) & ~bound).any(), mode)
            loss, grad = self.trl_loss(t, ours["advantages"], loss_type, "token", 0.04, 0.2, 0.28, False,
                                       rollout_weight=theirs)
            torch.testing.assert_close(ours["loss"][0], loss, rtol=1e-6, atol=1e-12, msg=mode)
            torch.testing.assert_close(ours["grad_logp"], grad, rtol=1e-6, atol=1e-12, msg=mode)

    def test_off_policy_sequence_mask(self):  # DeepSeek-V3.2, TRL's off_policy_mask_threshold
        for loss_type, delta, importance in (("grpo", 0.15, "token"), ("bnpo", 0.18, "sequence")):
            t = self.tensors(10)
            g = torch.Generator().manual_seed(11)
            t["sampled_logp"] = t["logp"] + torch.randn(P * G, T, generator=g, dtype=torch.float64).abs() * 0.2
            ours = self.r1(t, LOSS_TYPES[loss_type], "group", importance, 0.04, 0.2, 0.2, False, off_policy_mask=delta)
            loss, grad = self.trl_loss(t, ours["advantages"], loss_type, importance, 0.04, 0.2, 0.2, False,
                                       off_policy=delta)
            torch.testing.assert_close(ours["loss"][0], loss, rtol=1e-6, atol=1e-12, msg=loss_type)
            torch.testing.assert_close(ours["grad_logp"], grad, rtol=1e-6, atol=1e-12, msg=loss_type)
            # Some negative-advantage rows dropped (no surrogate gradient, only the KL's), others kept.
            drift = ((t["sampled_logp"] - t["logp"]) * t["mask"]).sum(1) / t["mask"].sum(1)
            dropped = (ours["advantages"] < 0) & (drift > delta)
            self.assertTrue(dropped.any() and ((ours["advantages"] < 0) & ~dropped).any(), loss_type)

    def test_two_sided_clip_and_cispo(self):
        for loss_type in ("grpo", "bnpo"):  # INTELLECT-2: the unclipped ratio capped at delta
            t = self.tensors(12)
            ours = self.r1(t, LOSS_TYPES[loss_type], "group", "token", 0.0, 0.2, 0.2, False, delta=1.25)
            loss, grad = self.trl_loss(t, ours["advantages"], loss_type, "token", 0.0, 0.2, 0.2, False, delta=1.25)
            torch.testing.assert_close(ours["loss"][0], loss, rtol=1e-6, atol=1e-12, msg=loss_type)
            torch.testing.assert_close(ours["grad_logp"], grad, rtol=1e-6, atol=1e-12, msg=loss_type)
            plain = self.r1(t, LOSS_TYPES[loss_type], "group", "token", 0.0, 0.2, 0.2, False)
            self.assertFalse(torch.allclose(plain["grad_logp"], ours["grad_logp"]), loss_type)  # delta binds
        # MiniMax-M1's CISPO (token-level aggregation, as TRL's cispo), the IS weight capped at 1.2 here
        # so that the cap binds on these tensors.
        t = self.tensors(13)
        ours = self.r1(t, "token-mean", "group", "token", 0.04, 0.2, 1.2, False, surrogate="cispo")
        loss, grad = self.trl_loss(t, ours["advantages"], "cispo", "token", 0.04, 0.2, 1.2, False)
        torch.testing.assert_close(ours["loss"][0], loss, rtol=1e-6, atol=1e-12, msg="cispo")
        torch.testing.assert_close(ours["grad_logp"], grad, rtol=1e-6, atol=1e-12, msg="cispo")
        self.assertTrue(((t["logp"] - t["old_logp"]).exp()[t["mask"].bool()] > 1.2).any())

    def test_sequence_level_importance(self):
        self.check("grpo", importance="sequence", eps=3e-4, eps_high=4e-4, seed=4)
        self.check("bnpo", importance="sequence", beta=0.001, seed=5)


if __name__ == "__main__":
    unittest.main()
