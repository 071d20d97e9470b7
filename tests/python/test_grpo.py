"""r1 grpo end to end on a tiny model: the reward rises under GRPO, every logged metric is
there, a run killed and resumed ends with exactly the weights of an uninterrupted one, the KL
path works with a reference, and invalid option combinations are clear errors up front."""
import json
import os
import re
import subprocess
import sys
import unittest

from safetensors.numpy import load_file

from r1test import assert_same_update, kill_at_checkpoint, R1, TempDirCase, r1, read_json, tiny_policy


class Grpo(TempDirCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.base, self.prompts = tiny_policy(self.tmp)
        self.reward = os.path.join(self.tmp, "reward.py")
        with open(self.reward, "w") as f:  # the share of 'a' characters: learnable from scratch
            f.write("import json, sys\nc = json.load(sys.stdin)['completion']\nprint(c.count('a') / max(1, len(c)))\n")

    def args(self, out, steps, *extra):
        return [R1, "grpo", "--init", self.base, "--prompts", self.prompts, "--out", out, "--prompt-template", "plain",
                "--steps", str(steps), "--prompts-per-step", "4", "--group-size", "8", "--micro-batch", "16",
                "--max-completion-tokens", "8", "--lr", "3e-3", "--reward", "external", "--reward-command",
                f"{sys.executable} {self.reward}", "--threads", "1", "--reward-threads", "2", *extra]

    def metrics(self, out):
        with open(os.path.join(out, "metrics.jsonl")) as f:
            return [json.loads(l) for l in f]

    def test_reward_rises_and_metrics_are_logged(self):
        out = os.path.join(self.tmp, "run")
        subprocess.run(self.args(out, 20), check=True, capture_output=True)
        m = self.metrics(out)
        self.assertEqual([r["step"] for r in m], list(range(1, 21)))
        first = sum(r["reward"] for r in m[:4]) / 4
        last = sum(r["reward"] for r in m[-4:]) / 4
        self.assertGreater(last, 3 * first + 0.05, [round(r["reward"], 3) for r in m])
        for key in ("reward", "reward_std", "reward_external", "accuracy", "zero_variance_groups", "completion_length",
                    "completion_length_min", "completion_length_max", "truncation_rate", "kl", "entropy", "clip_low",
                    "clip_high", "grad_norm", "lr", "generation_s", "reward_s", "train_s", "tokens_per_s", "rollouts_trained",
                    "rollout_logprob_diff"):
            self.assertIn(key, m[-1])
        # The training forward (prompts shared, padding skipped, logits at real tokens only) gives
        # every completion token the log-prob the engine sampled it with, through its KV cache.
        self.assertTrue(all(r["rollout_logprob_diff"] < 1e-4 for r in m), [r["rollout_logprob_diff"] for r in m])
        # mu = 1 is on-policy: the ratio is exactly 1, nothing is clipped.
        self.assertTrue(all(r["clip_low"] == 0 and r["clip_high"] == 0 for r in m))
        with open(os.path.join(out, "samples.jsonl")) as f:
            samples = [json.loads(l) for l in f]
        self.assertTrue(samples and all({"prompt", "completion", "reward", "advantage"} <= set(s) for s in samples))

    def test_a_mixture_of_experts_policy_learns_and_balances_its_experts(self):
        """R1's own architecture (tiny-v3: latent attention, 8 routed experts): the reward rises, the
        engine's log-probs (decoded through the latent cache) agree with the training pass's, expert loads
        are logged, and auxiliary-loss-free balancing moves the routing biases, kept in float32."""
        base, _ = tiny_policy(os.path.join(self.tmp), preset="tiny-v3")
        out = os.path.join(self.tmp, "moe")
        args = self.args(out, 16)
        args[args.index("--init") + 1] = base
        subprocess.run(args, check=True, capture_output=True)
        m = self.metrics(out)
        first = sum(r["reward"] for r in m[:4]) / 4
        last = sum(r["reward"] for r in m[-4:]) / 4
        self.assertGreater(last, 2 * first + 0.05, [round(r["reward"], 3) for r in m])
        # A mean over the step's tokens: 1e-3, not the dense models' 1e-4, since a token whose two best
        # experts nearly tie may be routed apart on the two paths (a wrong cache is off by ~1).
        self.assertTrue(all(r["rollout_logprob_diff"] < 1e-3 for r in m), [r["rollout_logprob_diff"] for r in m])
        self.assertEqual(m[-1]["moe_layers"], [1, 2, 3])
        self.assertTrue(all(1 <= r["moe_load_max_over_mean"] <= 8 for r in m))
        weights = load_file(os.path.join(out, "model.safetensors"))
        bias = weights["model.layers.1.mlp.gate.e_score_correction_bias"]
        self.assertEqual(str(bias.dtype), "float32")
        # 16 steps of +-0.001 (or 0 at exactly the mean load) each: moved, by at most 0.016.
        self.assertGreater(abs(bias).max(), 0.0015)
        self.assertLessEqual(abs(bias).max(), 0.016 + 1e-6)

    def test_kill_and_resume_give_identical_weights(self):
        straight = os.path.join(self.tmp, "straight")
        subprocess.run(self.args(straight, 6), check=True, capture_output=True)
        killed = os.path.join(self.tmp, "killed")
        kill_at_checkpoint(self.args(killed, 6, "--save-every", "1"), killed, 2)
        subprocess.run(self.args(killed, 6, "--resume"), check=True, capture_output=True)
        a = load_file(os.path.join(straight, "model.safetensors"))
        b = load_file(os.path.join(killed, "model.safetensors"))
        for k in a:
            self.assertTrue((a[k] == b[k]).all(), k)
        self.assertEqual([r["step"] for r in self.metrics(killed)], list(range(1, 7)))

    def test_bf16_autocast(self):
        out = os.path.join(self.tmp, "bf16")
        subprocess.run(self.args(out, 2, "--precision", "bf16", "--beta", "0.04"), check=True, capture_output=True)
        weights = load_file(os.path.join(out, "model.safetensors"))
        self.assertTrue(all(str(w.dtype) == "float32" for w in weights.values()))  # fp32 master weights
        fp32 = os.path.join(self.tmp, "fp32")
        subprocess.run(self.args(fp32, 1, "--beta", "0.04"), check=True, capture_output=True)
        a, b = self.metrics(out)[0]["grad_norm"], self.metrics(fp32)[0]["grad_norm"]
        self.assertNotEqual(a, b)  # the forward really ran in bf16 ...
        self.assertAlmostEqual(a, b, delta=0.05 * b)  # ... on the same rollouts
        proc = subprocess.run(self.args(out + "x", 1, "--precision", "fp8"), capture_output=True, text=True)
        self.assertIn("--precision 'fp8'", proc.stderr)

    def test_kl_to_a_reference(self):
        out = os.path.join(self.tmp, "kl")
        subprocess.run(self.args(out, 4, "--beta", "0.04", "--mu", "2"), check=True, capture_output=True)
        m = self.metrics(out)
        self.assertEqual(m[0]["kl"], 0)  # the policy starts as the reference
        self.assertGreater(m[-1]["kl"], 0)
        self.assertTrue(os.path.exists(os.path.join(out, "trainer_state", "reference", "model.safetensors")))

    def test_invalid_combinations_are_clear_errors(self):
        out = os.path.join(self.tmp, "bad")
        for (flag, value), needle in ((("--group-size", "1"), "at least 2"),
                                      (("--micro-batch", "5"), "multiple of --micro-batch"),
                                      (("--loss-agg", "sum"), "--loss-agg"), (("--scale-rewards", "x"), "--scale-rewards"),
                                      (("--top-k", "-1"), "top_k must be"), (("--min-p", "2"), "min_p must be"),
                                      (("--delta", "1.1"), "--delta must exceed"),
                                      (("--rollout-correction-max", "0"), "min < max")):
            args = self.args(out, 2)
            if flag in args:
                args[args.index(flag) + 1] = value
            else:
                args += [flag, value]
            proc = subprocess.run(args, capture_output=True, text=True)
            self.assertNotEqual(proc.returncode, 0, flag)
            self.assertIn(needle, proc.stderr, flag)
        args = self.args(out, 2)
        args[args.index("external")] = "accuracy_mathh"
        self.assertIn("unknown reward", subprocess.run(args, capture_output=True, text=True).stderr)

    def test_rollout_correction_when_the_sampler_differs(self):
        """Top-p rollouts come from a truncated distribution whose log-probs exceed the policy's, so
        rollout_logprob_diff shows the mismatch and --rollout-correction weights those tokens below 1;
        without the flag no weights are logged."""
        runs = {}
        for mode in ("none", "token-truncate"):
            out = os.path.join(self.tmp, mode)
            subprocess.run(self.args(out, 2, "--top-p", "0.5", "--rollout-correction", mode), check=True,
                           capture_output=True)
            runs[mode] = self.metrics(out)
        self.assertTrue(all(r["rollout_weight"] is None for r in runs["none"]))
        for r in runs["token-truncate"]:
            self.assertGreater(r["rollout_logprob_diff"], 0.05)
            self.assertLess(r["rollout_weight"], 0.99)
            self.assertGreater(r["rollout_weight"], 0)
        # The same rollouts (same seeds), a different update.
        self.assertEqual(runs["none"][0]["reward"], runs["token-truncate"][0]["reward"])
        self.assertNotAlmostEqual(runs["none"][0]["grad_norm"], runs["token-truncate"][0]["grad_norm"], places=6)
        # DeepSeek-V3.2's off-policy sequence mask: with the top-p drift above the threshold, it drops the
        # negative-advantage completions (about half of those trained), logged as off_policy_masked.
        out = os.path.join(self.tmp, "opsm")
        subprocess.run(self.args(out, 2, "--top-p", "0.5", "--off-policy-mask", "0.01"), check=True, capture_output=True)
        masked = [r["off_policy_masked"] for r in self.metrics(out)]
        self.assertTrue(all(0.2 < x < 0.8 for x in masked), masked)
        self.assertTrue(all(r["off_policy_masked"] is None for r in runs["none"]))

    def test_prompt_file_forms(self):
        """A prompt row is a text (`prompt` / `problem` / `question`), `messages`, or TRL's
        conversational `prompt` (a list of messages): the last two render the same chat prompt. Rows
        of the wrong shape are errors naming the file, line and field."""
        user = "item 3:"
        forms = {"messages": {"messages": [{"role": "user", "content": user}]},
                 "conversational": {"prompt": [{"role": "user", "content": user}]}}
        rendered = {}
        for name, row in forms.items():
            prompts, out = os.path.join(self.tmp, name + ".jsonl"), os.path.join(self.tmp, name)
            with open(prompts, "w") as f:
                f.write(json.dumps(row) + "\n")
            args = self.args(out, 1, "--chat-template", "r1-zero")
            args[args.index("--prompt-template") + 1] = "chat"
            args[args.index("--prompts") + 1] = prompts
            args[args.index("--prompts-per-step") + 1] = "1"
            args[args.index("--micro-batch") + 1] = "8"
            subprocess.run(args, check=True, capture_output=True)
            with open(os.path.join(out, "samples.jsonl")) as f:
                rendered[name] = {json.loads(line)["prompt"] for line in f}
        self.assertEqual(len(rendered["messages"]), 1)
        text = next(iter(rendered["messages"]))
        self.assertIn(user, text)
        self.assertIn("<think>", text)  # the R1-Zero template's instructions around the user's text
        self.assertEqual(rendered["messages"], rendered["conversational"])
        for row, needle in (({"prompt": 5}, ":1: 'prompt' must be a string"),
                            ({"prompt": [{"role": "user"}]}, ":1: message 0 needs string 'role' and 'content'"),
                            ({"answer": "2"}, ":1: needs a non-empty 'prompt'")):
            prompts = os.path.join(self.tmp, "bad.jsonl")
            with open(prompts, "w") as f:
                f.write(json.dumps(row) + "\n")
            args = self.args(os.path.join(self.tmp, "bad"), 1)
            args[args.index("--prompts") + 1] = prompts
            proc = subprocess.run(args, capture_output=True, text=True)
            self.assertNotEqual(proc.returncode, 0, row)
            self.assertIn(needle, proc.stderr, row)

    def test_two_processes_equal_one(self):
        """Data-parallel GRPO through `r1 launch`: each rank generates and scores half of the prompts
        with their global seeds, so 2 processes sample the same completions, and end with the same
        weights as 1 (token-level loss and mu = 2 check the global weighting) whether each rank trains
        its own prompts' rollouts (--rank-balance none) or the pooled rollouts are dealt out by
        length (tokens, the default: then the ranks train near-equal token counts)."""
        def args(out, *extra):
            a = self.args(out, 3, "--loss-agg", "token-mean", "--mu", "2", *extra)
            a[a.index("--micro-batch") + 1] = "8"  # several micro-batches per rank
            return a
        one = os.path.join(self.tmp, "one")
        subprocess.run(args(one), check=True, capture_output=True)
        m1 = self.metrics(one)
        a = load_file(os.path.join(one, "model.safetensors"))
        first = load_file(os.path.join(self.base, "model.safetensors"))
        self.assertGreater(max(float(abs(a[k] - first[k]).max()) for k in a), 1e-3)  # it trained
        self.assertTrue(all(r["rank_imbalance"] == 1 for r in m1))
        for balance in ("tokens", "none"):
            two = os.path.join(self.tmp, "two-" + balance)
            proc = subprocess.run([R1, "launch", "--nproc", "2", "--", *args(two, "--rank-balance", balance)[1:]],
                                  check=True, capture_output=True, text=True)
            self.assertEqual(proc.stdout.count("grpo: 3 steps"), 1)  # one report, from rank 0
            m2 = self.metrics(two)
            self.assertEqual([r["step"] for r in m2], [1, 2, 3])  # rank 0 alone writes
            for x, y in zip(m1, m2):
                for key in ("reward", "completion_length", "completion_length_max", "zero_variance_groups",
                            "rollouts_trained"):
                    self.assertAlmostEqual(x[key], y[key], places=6, msg=key)
                for key in ("loss", "entropy", "clip_low", "clip_high", "grad_norm", "rollout_logprob_diff"):
                    self.assertAlmostEqual(x[key], y[key], delta=1e-4 * max(1, abs(x[key])), msg=key)
                self.assertGreaterEqual(y["rank_imbalance"], 1)
                if balance == "tokens":  # ~16 rollouts of ~12 tokens per rank: within one rollout of even
                    self.assertLess(y["rank_imbalance"], 1.1, balance)
            assert_same_update(self, a, load_file(os.path.join(two, "model.safetensors")), first, balance)
        # An odd prompt count cannot be shared evenly: a clear error before any work.
        bad = self.args(os.path.join(self.tmp, "odd"), 1)
        bad[bad.index("--prompts-per-step") + 1] = "3"
        bad[bad.index("--micro-batch") + 1] = "8"
        proc = subprocess.run([R1, "launch", "--nproc", "2", "--", *bad[1:]], capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("multiple of the number of processes", proc.stderr)

    def launch_zero_runs(self, name, zeros, *extra, micro_batch="16", steps=2):
        weights, metrics = {}, {}
        for zero in zeros:
            out = os.path.join(self.tmp, f"{name}-zero{zero}")
            a = self.args(out, steps, "--mu", "2", "--zero", zero, *extra)
            a[a.index("--micro-batch") + 1] = micro_batch
            proc = subprocess.run([R1, "launch", "--nproc", "2", "--", *a[1:]], capture_output=True, text=True)
            self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
            weights[zero] = load_file(os.path.join(out, "model.safetensors"))
            metrics[zero] = self.metrics(out)
        return weights, metrics

    def test_sharded_data_parallelism_takes_the_same_steps(self):
        """--zero 1 (AdamW's state sharded), 2 (gradients reduced onto their owners during the
        backward pass) and 3 (layer weights gathered layer by layer) take plain data parallelism's
        steps: bit for bit with one micro-batch per rank (mu = 2, a KL reference). With several
        micro-batches, split by length without rank balancing so that the ranks run different
        numbers of them (the one with fewer idles through the collectives), ZeRO-2/3 sum each
        micro-batch over the ranks before the micro-batches (plain DP: the other way round), and
        Adam turns that rounding in gradients that cancel across a group into step differences of
        about lr x 1e-3 (measured 1.6e-5 after 3 steps at lr 3e-3)."""
        diff = lambda a, b: max(float(abs(a[k] - b[k]).max()) for k in a)
        # ZeRO-3 runs ZeRO-2's gradient reduction too (they are equal bit for bit: test_distributed.py).
        weights, _ = self.launch_zero_runs("one-micro-batch", ("0", "1", "3"), "--beta", "0.05")
        first = load_file(os.path.join(self.base, "model.safetensors"))
        self.assertGreater(diff(first, weights["0"]), 1e-3)  # it trained
        for zero in ("1", "3"):
            self.assertEqual(diff(weights["0"], weights[zero]), 0.0, zero)
        weights, metrics = self.launch_zero_runs("uneven", ("0", "3"), "--rank-balance", "none", micro_batch="4",
                                                  steps=3)
        self.assertLess(diff(weights["0"], weights["3"]), 3e-5)
        for x, y in zip(metrics["0"], metrics["3"]):
            self.assertAlmostEqual(x["grad_norm"], y["grad_norm"], delta=1e-5 * x["grad_norm"])
            self.assertEqual(x["reward"], y["reward"])

    def test_reference_model_in_bf16(self):
        """--reference-dtype bf16 keeps the KL reference's weights in bf16 (half the memory; the
        default when the passes run in bf16): at the first step the fp32 reference equals the
        policy (KL 0) and the bf16 one differs by its rounding only, and later KLs stay close to
        the fp32 reference's."""
        kls = {}
        for dtype in ("fp32", "bf16"):
            out = os.path.join(self.tmp, "ref-" + dtype)
            subprocess.run(self.args(out, 3, "--beta", "0.1", "--reference-dtype", dtype, "--save-every", "1"),
                           check=True, capture_output=True)
            kls[dtype] = [m["kl"] for m in self.metrics(out)]
            config = read_json(os.path.join(out, "trainer_state", "reference", "config.json"))
            self.assertEqual(config.get("dtype", config.get("torch_dtype")), {"fp32": "float32", "bf16": "bfloat16"}[dtype])
        self.assertEqual(kls["fp32"][0], 0.0)
        self.assertGreater(kls["bf16"][0], 0.0)
        self.assertLess(kls["bf16"][0], 1e-4)
        self.assertGreater(kls["fp32"][-1], 1e-3)
        for a, b in zip(kls["fp32"][1:], kls["bf16"][1:]):
            self.assertAlmostEqual(a, b, delta=0.3 * a + 1e-4)

    def test_rollout_batch_bounds_the_kv_cache(self):
        """--rollout-batch 8: the engine holds 8 rows instead of the step's 32 (a quarter of the KV
        cache) and the other groups wait for free rows; every rollout is still generated, from
        the same per-prompt seeds, and a batch below the group size is refused."""
        runs = {}
        for batch in ("0", "8"):
            out = os.path.join(self.tmp, "batch" + batch)
            proc = subprocess.run(self.args(out, 2, "--rollout-batch", batch), capture_output=True, text=True)
            self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
            line = re.search(r"rollouts: (\d+) sequences decoded at once per rank, KV cache ([\d.]+) MB", proc.stderr)
            self.assertIsNotNone(line, proc.stderr[-2000:])
            runs[batch] = (int(line.group(1)), float(line.group(2)), self.metrics(out))
        self.assertEqual((runs["0"][0], runs["8"][0]), (32, 8))
        self.assertAlmostEqual(runs["8"][1] / runs["0"][1], 0.25, delta=0.01)
        for x, y in zip(runs["0"][2], runs["8"][2]):
            self.assertEqual(x["step"], y["step"])
            self.assertAlmostEqual(x["completion_length"], y["completion_length"], delta=0.5)
        proc = subprocess.run(self.args(os.path.join(self.tmp, "small"), 1, "--rollout-batch", "4"),
                              capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("below --group-size", proc.stderr)

    def test_skipping_zero_advantage_rollouts_leaves_the_update_unchanged(self):
        """With beta = 0 the rollouts of a group whose rewards are all equal get advantage 0 and no
        gradient: r1 skips their forward/backward by default. Against --train-zero-advantage
        (every rollout trained, as TRL does) the loss, gradient norm and weights must agree for each
        loss aggregation (their normalisers still count the skipped rollouts) and with mu = 2."""
        flat = os.path.join(self.tmp, "half_flat.py")
        with open(flat, "w") as f:  # even items: a constant reward (flat groups); odd: the share of 'a'
            f.write("import json, sys\nd = json.load(sys.stdin)\nc = d['completion']\n"
                    "i = int(d['prompt'].split()[1].rstrip(':'))\n"
                    "print(0.5 if i % 2 == 0 else c.count('a') / max(1, len(c)))\n")
        for loss_agg in ("seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"):
            runs = {}
            for mode in ("skip", "--train-zero-advantage"):
                out = os.path.join(self.tmp, loss_agg + mode)
                a = self.args(out, 3, "--loss-agg", loss_agg, "--mu", "2", *([mode] if mode != "skip" else []))
                a[a.index("--micro-batch") + 1] = "8"
                a[a.index("--reward-command") + 1] = f"{sys.executable} {flat}"
                subprocess.run(a, check=True, capture_output=True)
                runs[mode] = (self.metrics(out), load_file(os.path.join(out, "model.safetensors")))
            (skip, w_skip), (full, w_full) = runs["skip"], runs["--train-zero-advantage"]
            self.assertGreater(sum(r["zero_variance_groups"] for r in skip), 0.5, loss_agg)
            for r in skip:  # exactly the flat groups' rollouts were skipped
                self.assertAlmostEqual(r["rollouts_trained"], 1 - r["zero_variance_groups"], places=9)
            self.assertTrue(all(r["rollouts_trained"] == 1 for r in full))
            for x, y in zip(skip, full):
                self.assertEqual(x["reward"], y["reward"], loss_agg)  # the same samples
                for key in ("loss", "grad_norm", "clip_low", "clip_high"):
                    self.assertAlmostEqual(x[key], y[key], delta=1e-4 * max(1, abs(y[key])), msg=(loss_agg, key))
            self.assertLess(max(float(abs(w_skip[k] - w_full[k]).max()) for k in w_full), 1e-4, loss_agg)
            if loss_agg == "token-mean":  # data parallel: each rank skips its own flat groups
                out = os.path.join(self.tmp, "dp")
                a = self.args(out, 3, "--loss-agg", loss_agg, "--mu", "2")
                a[a.index("--micro-batch") + 1] = "8"
                a[a.index("--reward-command") + 1] = f"{sys.executable} {flat}"
                subprocess.run([R1, "launch", "--nproc", "2", "--", *a[1:]], check=True, capture_output=True)
                dp = self.metrics(out)
                for x, y in zip(dp, full):
                    self.assertEqual(x["reward"], y["reward"])  # the same samples
                    self.assertAlmostEqual(x["grad_norm"], y["grad_norm"], delta=1e-4 * max(1, y["grad_norm"]))
                self.assertEqual([r["rollouts_trained"] for r in dp], [r["rollouts_trained"] for r in skip])
                w_dp = load_file(os.path.join(out, "model.safetensors"))
                self.assertLess(max(float(abs(w_dp[k] - w_full[k]).max()) for k in w_full), 1e-4)
        # Every group flat: nothing to train, the step still completes; entropy has no tokens to average.
        const = os.path.join(self.tmp, "const.py")
        with open(const, "w") as f:
            f.write("print(1)\n")
        out = os.path.join(self.tmp, "all-flat")
        a = self.args(out, 1)
        a[a.index("--reward-command") + 1] = f"{sys.executable} {const}"
        subprocess.run(a, check=True, capture_output=True)
        m = self.metrics(out)[0]
        self.assertEqual((m["zero_variance_groups"], m["rollouts_trained"], m["entropy"]), (1.0, 0.0, None))

    def test_checkpointed_activations_take_the_same_update(self):
        """--checkpoint-activations recomputes each layer in the backward pass: the same samples, loss
        and gradient norm, and the same weights (float rounding apart), through the shared-prefix
        forward and through whole rows."""
        for sharing in ("on", "off"):
            runs = []
            for extra in ([], ["--checkpoint-activations"]):
                out = os.path.join(self.tmp, sharing + "".join(extra))
                subprocess.run(self.args(out, 2, "--mu", "2", "--prompt-sharing", sharing, *extra), check=True,
                               capture_output=True)
                runs.append((self.metrics(out), load_file(os.path.join(out, "model.safetensors"))))
            (plain, w_plain), (recomputed, w_recomputed) = runs
            for x, y in zip(plain, recomputed):
                self.assertEqual(x["reward"], y["reward"], sharing)
                for key in ("loss", "grad_norm"):
                    self.assertAlmostEqual(x[key], y[key], delta=1e-5 * max(1, abs(x[key])), msg=(sharing, key))
            self.assertLess(max(float(abs(w_plain[k] - w_recomputed[k]).max()) for k in w_plain), 1e-5, sharing)

    def test_shared_prompt_forward_equals_whole_rows(self):
        """--prompt-sharing on runs each group's prompt through the training forward once; off runs
        every prompt + completion row whole. Same rollouts, so the loss, KL to the reference, entropy,
        gradient norm and the update must agree (mu = 2 and beta > 0 cover the old and reference
        log-probs too). The update is compared where it is linear in the gradient: AdamW with epsilon
        100 (far above any gradient entry) moves each weight by lr / 100 x its gradient, so weights
        differ only by float order. With the usual epsilon 1e-8 Adam divides each entry by its own
        magnitude, and an entry that nearly cancels gets a full step in whichever direction float order
        gives it: weights after a few steps then differ by ~1e-4 between CPUs (AMD, or MKL's AVX2 path)
        while the gradients agree to 1e-6."""
        import numpy as np
        runs = {}
        for mode in ("on", "off"):
            out = os.path.join(self.tmp, mode)
            a = self.args(out, 2, "--prompt-sharing", mode, "--mu", "2", "--beta", "0.04", "--adam-eps", "100")
            a[a.index("--micro-batch") + 1] = "8"
            a[a.index("--lr") + 1] = "10"
            subprocess.run(a, check=True, capture_output=True)
            runs[mode] = (self.metrics(out), load_file(os.path.join(out, "model.safetensors")))
        (on, w_on), (off, w_off) = runs["on"], runs["off"]
        start = load_file(os.path.join(self.base, "model.safetensors"))
        for x, y in zip(on, off):
            self.assertEqual(x["reward"], y["reward"])
            for key in ("loss", "kl", "entropy", "grad_norm"):
                self.assertAlmostEqual(x[key], y[key], delta=1e-5 * max(1, abs(y[key])), msg=key)
        self.assertGreater(max(r["kl"] for r in off), 0)  # the reference path ran and the policy moved
        self.assertGreater(max(float(np.abs(w_off[k] - start[k]).max()) for k in w_off), 1e-3)
        for k in w_off:
            update = float(np.linalg.norm((w_off[k] - start[k]).ravel()))
            differ = float(np.linalg.norm((w_on[k] - w_off[k]).ravel()))
            self.assertLess(differ, 2e-4 * update + 1e-7, k)

    def test_reads_the_built_in_data_sets(self):
        """GSM8K (question / answer), MATH-500 (problem / answer) and HumanEval (gzipped, code prompt +
        tests) are prompt files as they are, with their rewards."""
        data = os.environ["R1_TEST_DATA"]
        for name, path, reward in (("gsm8k", "gsm8k/test.jsonl", "accuracy_gsm8k"),
                                   ("math500", "math500/test.jsonl", "accuracy_math"),
                                   ("humaneval", "humaneval/HumanEval.jsonl.gz", "accuracy_code")):
            out = os.path.join(self.tmp, name)
            args = self.args(out, 1)
            args[args.index("--prompts") + 1] = os.path.join(data, path)
            args[args.index("external")] = reward
            args[args.index("--prompts-per-step") + 1] = "2"
            args[args.index("--group-size") + 1] = "2"
            args[args.index("--micro-batch") + 1] = "4"
            proc = subprocess.run(args, capture_output=True, text=True)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            m = self.metrics(out)
            self.assertIn("reward_" + reward, m[0])
            with open(os.path.join(out, "samples.jsonl")) as f:
                prompt = json.loads(f.readline())["prompt"]
            self.assertTrue(prompt.strip(), name)
        if name == "humaneval":
            self.assertIn("def ", prompt)

    def test_recipe_files_run_and_args_toml_reproduces_the_run(self):
        """Each recipes/grpo/*.toml is valid for r1 grpo (a key it lacks would be an error) and runs
        scaled down by flags, which win over the file; RUN/args.toml records the options in effect and
        reading it back with --config gives the same options."""
        recipes = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "grpo")
        files = sorted(f for f in os.listdir(recipes) if f.endswith(".toml"))
        self.assertGreaterEqual(len(files), 4)
        small = ["--overlong-max-tokens", "8", "--overlong-cache-tokens", "2"]
        for name in files:
            out = os.path.join(self.tmp, name)
            args = self.args(out, 1, *small) + ["--config", os.path.join(recipes, name)]
            subprocess.run(args, check=True, capture_output=True)
            with open(os.path.join(out, "args.toml")) as f:
                saved = f.read()
            with open(os.path.join(recipes, name)) as f:
                recipe = f.read()
            # from the file (the flags do not set it) ...
            beta = next(l.split("=")[1].split("#")[0].strip() for l in recipe.splitlines() if l.startswith("beta"))
            self.assertEqual(float(self.toml_value(saved, "beta")), float(beta), name)
            # ... and from the flags, over the file's value
            self.assertEqual(self.toml_value(saved, "group-size"), "8", name)
            again = os.path.join(self.tmp, name + "-again")
            rerun = [R1, "grpo", "--config", os.path.join(out, "args.toml"), "--out", again, "--steps", "1"]
            subprocess.run(rerun, check=True, capture_output=True)
            with open(os.path.join(again, "args.toml")) as f:
                self.assertEqual(f.read().replace(again, out), saved, name)
        # A mistyped key names the file and the key.
        bad = os.path.join(self.tmp, "bad.toml")
        with open(bad, "w") as f:
            f.write("group-size = 8\ngroup_sise = 4\n")
        proc = subprocess.run(self.args(os.path.join(self.tmp, "b"), 1) + ["--config", bad], capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("bad.toml: unknown key 'group_sise'", proc.stderr)

    @staticmethod
    def toml_value(text, key):
        for line in text.splitlines():
            if line.split("=")[0].strip() == key:
                return line.split("=", 1)[1].strip().strip('"')
        raise KeyError(key)


if __name__ == "__main__":
    unittest.main()
