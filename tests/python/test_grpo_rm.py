"""GRPO with a learned reward model (--reward rm:DIR): its scores are the reward (the same as
`r1 rm score` gives), and iterative RL (--rm-update-every) trains the reward model on fresh,
rule-labelled policy samples with replay, resets the reference, and resumes exactly, in one
process or data-parallel."""
import json
import os
import subprocess
import sys
import unittest

from safetensors.numpy import load_file

from r1test import R1, TempDirCase, assert_same_update, r1, tiny_policy


class GrpoRewardModel(TempDirCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.base, self.prompts = tiny_policy(self.tmp)
        pairs = os.path.join(self.tmp, "pairs.jsonl")
        with open(pairs, "w") as f:  # prefer completions with many a's
            for i in range(64):
                f.write(json.dumps({"prompt": f"item {i % 16}:", "chosen": " a a aa a", "rejected": " the cat sat"}) + "\n")
        self.rm = os.path.join(self.tmp, "rm")
        r1("rm", "train", "--init", self.base, "--data", pairs, "--out", self.rm, "--epochs", 2, "--batch-size", 16,
           "--lr", "1e-3", "--threads", 1)
        self.label = os.path.join(self.tmp, "label.py")
        with open(self.label, "w") as f:  # right = at least two a's
            f.write("import json, sys\nc = json.load(sys.stdin)['completion']\nprint(1 if c.count('a') >= 2 else 0)\n")

    def args(self, out, steps, reward, *extra):
        return [R1, "grpo", "--init", self.base, "--prompts", self.prompts, "--out", out, "--prompt-template", "plain",
                "--steps", str(steps), "--prompts-per-step", "4", "--group-size", "8", "--micro-batch", "16",
                "--max-completion-tokens", "8", "--lr", "3e-3", "--reward", reward, "--reward-command",
                f"{sys.executable} {self.label}", "--threads", "1", "--sample-every", "1", *extra]

    def metrics(self, out):
        with open(os.path.join(out, "metrics.jsonl")) as f:
            return [json.loads(l) for l in f]

    def test_reward_model_scores_are_the_reward(self):
        out = os.path.join(self.tmp, "run")
        subprocess.run(self.args(out, 2, f"rm:{self.rm}"), check=True, capture_output=True)
        m = self.metrics(out)
        self.assertIn("reward_rm", m[-1])
        with open(os.path.join(out, "samples.jsonl")) as f:
            samples = [json.loads(l) for l in f]
        rows = os.path.join(self.tmp, "rows.jsonl")
        with open(rows, "w") as f:
            for s in samples:
                f.write(json.dumps({"prompt": s["prompt"], "response": s["completion"], "label": 0}) + "\n")
        scored = r1("rm", "score", "--model", self.rm, "--input", rows, "--threads", 1).stdout.splitlines()
        for s, line in zip(samples[:4], scored):  # step 1's policy is the initial one
            self.assertAlmostEqual(s["reward"], json.loads(line)["score"], delta=1e-4)

    def test_iterative_updates_and_exact_resume(self):
        reward = f"rm:{self.rm}:1,external:0"
        extra = ("--rm-update-every", "2", "--beta", "0.04", "--rm-lr", "1e-3", "--save-every", "2",
                 "--rm-replay-fraction", "0.5")  # few pairs per update: a large share, so replay shows
        straight = os.path.join(self.tmp, "straight")
        subprocess.run(self.args(straight, 4, reward, *extra), check=True, capture_output=True)
        m = self.metrics(straight)
        updates = [r for r in m if "rm_update_pairs" in r]
        self.assertEqual([r["step"] for r in updates], [2, 4])
        self.assertGreater(sum(r["rm_update_pairs"] for r in updates), 0)
        self.assertGreater(updates[1]["rm_update_replay"], 0)  # history replayed in the second update
        state = os.path.join(straight, "trainer_state")
        trained = load_file(os.path.join(state, "reward_model", "model.safetensors"))
        original = load_file(os.path.join(self.rm, "model.safetensors"))
        self.assertGreater(float(abs(trained["score.weight"] - original["score.weight"]).max()), 0)
        # The reference was reset to the policy at the update: their KL restarts from 0.
        self.assertEqual(m[2]["kl"], 0)

        # Stopped after step 2 and resumed: the same policy and reward model as the straight run.
        resumed = os.path.join(self.tmp, "resumed")
        subprocess.run(self.args(resumed, 2, reward, *extra), check=True, capture_output=True)
        subprocess.run(self.args(resumed, 4, reward, *extra, "--resume"), check=True, capture_output=True)
        for name in ("model.safetensors", os.path.join("trainer_state", "reward_model", "model.safetensors")):
            a = load_file(os.path.join(straight, name))
            b = load_file(os.path.join(resumed, name))
            for k in a:
                self.assertTrue((a[k] == b[k]).all(), (name, k))

    def test_two_processes_equal_one(self):
        """Data-parallel iterative RL: each rank labels its own groups, the pairs are shared in the
        order one process collects them, and every rank trains the same reward model: 2 processes
        end with the policy and reward model of 1, also through a stop after step 2 and --resume."""
        with open(self.label, "w") as f:  # right = at least one a: many mixed groups, so many pairs
            f.write("import json, sys\nc = json.load(sys.stdin)['completion']\nprint(1 if 'a' in c else 0)\n")
        reward = f"rm:{self.rm}:1,external:0"
        extra = ("--rm-update-every", "2", "--beta", "0.04", "--rm-lr", "1e-3", "--rm-replay-fraction", "0.5",
                 "--rm-batch-size", "1")  # one pair per reward-model step: the order of the pairs matters
        one, two = os.path.join(self.tmp, "one"), os.path.join(self.tmp, "two")
        subprocess.run(self.args(one, 4, reward, *extra), check=True, capture_output=True)
        launch = [R1, "launch", "--nproc", "2", "--"]
        subprocess.run(launch + self.args(two, 2, reward, *extra)[1:], check=True, capture_output=True)
        subprocess.run(launch + self.args(two, 4, reward, *extra, "--resume")[1:], check=True, capture_output=True)
        m1, m2 = self.metrics(one), self.metrics(two)
        self.assertEqual([r["step"] for r in m2], [1, 2, 3, 4])
        self.assertGreater(sum(r.get("rm_update_pairs", 0) for r in m1), 0)
        for x, y in zip(m1, m2):
            for key in ("rm_update_pairs", "rm_update_replay"):
                self.assertEqual(x.get(key), y.get(key), (x["step"], key))
            for key in ("rm_update_loss", "reward"):
                if key in x:
                    self.assertAlmostEqual(x[key], y[key], delta=1e-4, msg=(x["step"], key))
        for name in ("model.safetensors", os.path.join("trainer_state", "reward_model", "model.safetensors")):
            a = load_file(os.path.join(one, name))
            b = load_file(os.path.join(two, name))
            self.assertLess(max(float(abs(a[k] - b[k]).max()) for k in a), 1e-4, name)
        trained = load_file(os.path.join(one, "trainer_state", "reward_model", "model.safetensors"))
        original = load_file(os.path.join(self.rm, "model.safetensors"))
        self.assertGreater(float(abs(trained["score.weight"] - original["score.weight"]).max()), 1e-4)

    def test_normalized_scores_are_z_scores_over_the_whole_step_in_any_number_of_processes(self):
        """--rm-normalize: one process and two give the same run. With --scale-rewards none the
        advantages are the normalised scores minus the group mean, so z-scores over each rank's
        half instead of the whole step would give other updates."""
        extra = ("--rm-normalize", "--scale-rewards", "none", "--samples-per-log", "32")
        one, two = os.path.join(self.tmp, "one"), os.path.join(self.tmp, "two")
        subprocess.run(self.args(one, 2, f"rm:{self.rm}", *extra), check=True, capture_output=True)
        subprocess.run([R1, "launch", "--nproc", "2", "--"] + self.args(two, 2, f"rm:{self.rm}", *extra)[1:],
                       check=True, capture_output=True)
        m1 = self.metrics(one)
        self.assertAlmostEqual(m1[0]["reward"], 0, delta=1e-9)  # z-scores: mean 0 over the step
        self.assertAlmostEqual(m1[0]["reward_std"], 1, delta=1e-4)
        # The logged rewards of step 1 are the z-scores of `r1 rm score` over all 32 completions.
        with open(os.path.join(one, "samples.jsonl")) as f:
            samples = [json.loads(l) for l in f if json.loads(l)["step"] == 1]
        self.assertEqual(len(samples), 32)
        rows = os.path.join(self.tmp, "rows.jsonl")
        with open(rows, "w") as f:
            for s in samples:
                f.write(json.dumps({"prompt": s["prompt"], "response": s["completion"], "label": 0}) + "\n")
        raw = [json.loads(l)["score"] for l in r1("rm", "score", "--model", self.rm, "--input", rows,
                                                     "--threads", 1).stdout.splitlines()]
        mean = sum(raw) / len(raw)
        sd = (sum((x - mean) ** 2 for x in raw) / len(raw)) ** 0.5
        for s, x in zip(samples, raw):
            self.assertAlmostEqual(s["reward"], (x - mean) / (sd + 1e-6), delta=1e-3)
        # The two runs' weight updates agree to float noise, which Adam amplifies where a gradient
        # entry nearly cancels: compared per tensor as the norm of their difference over the norm of
        # the update (~1e-4 here; z-scores over half the step change updates at order 1).
        assert_same_update(self, load_file(os.path.join(one, "model.safetensors")),
                           load_file(os.path.join(two, "model.safetensors")),
                           load_file(os.path.join(self.base, "model.safetensors")))

    def test_bad_combinations(self):
        out = os.path.join(self.tmp, "bad")
        for reward, extra, needle in (("external", ("--rm-update-every", "2"), "needs a learned reward"),
                                      (f"rm:{self.rm}", ("--rm-update-every", "2"), "labels fresh samples"),
                                      (f"rm:{self.base}", (), "not a reward model"),
                                      (f"rm:{self.rm},rm:{self.rm}", (), "only one reward model")):
            proc = subprocess.run(self.args(out, 1, reward, *extra), capture_output=True, text=True)
            self.assertNotEqual(proc.returncode, 0, reward)
            self.assertIn(needle, proc.stderr, reward)


if __name__ == "__main__":
    unittest.main()
