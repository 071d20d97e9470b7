"""The main job's contract: recipes/tiny-r1-zero.sh (make demo) with FAST=1 writes OUT/summary.json
with the numbers scripts rely on, measured on the held-out split by r1 eval."""
import json
import os
import subprocess
import unittest

from r1test import R1, TempDirCase, r1

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class TinyR1Zero(TempDirCase, unittest.TestCase):
    def test_fast_run_writes_the_summary(self):
        out = os.path.join(self.tmp, "run")
        proc = subprocess.run(["bash", os.path.join(ROOT, "recipes", "tiny-r1-zero.sh")], cwd=ROOT,
                              env={**os.environ, "R1": R1, "OUT": out, "FAST": "1", "SEED": "2"},
                              capture_output=True, text=True, timeout=900)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
        for key in ("accuracy_before", "accuracy_after", "format_rate_after", "think_rate_before", "think_rate_after",
                    "length_before", "length_after", "seconds", "accuracy_after_with_format_reward"):
            self.assertIsInstance(summary[key], (int, float), key)
        with open(os.path.join(out, "eval-after.json")) as f:
            after = json.load(f)
        self.assertEqual(summary["accuracy_after"], after["pass@1"])  # the summary is r1 eval's own numbers
        # Two measures: a closed think block anywhere, and the full R1-Zero format.
        self.assertEqual(summary["think_rate_after"], after["think_rate"])
        self.assertEqual(summary["format_rate_after"], after["reward_format_think"])
        self.assertEqual(after["problems"], 200)
        self.assertIn("accuracy", proc.stdout)
        with open(os.path.join(out, "report.html")) as f:
            report = f.read()
        self.assertIn("<polyline", report)
        self.assertIn("accuracy", report)
        # The chat command the demo prints works on its model (piped input: the answer streams).
        chat = next(line for line in proc.stdout.splitlines() if line.startswith("chat with it:"))
        args = chat.split(":", 1)[1].split("(")[0].split()
        self.assertEqual(args[:2], [R1, "chat"])
        reply = subprocess.run(args + ["--max-new-tokens", "20", "--threads", "1"], input="Q: 12+34=? A:\n",
                               capture_output=True, text=True, timeout=120)
        self.assertEqual(reply.returncode, 0, reply.stderr)
        self.assertTrue(reply.stdout.strip(), reply.stderr)

    def test_grpo_lifts_held_out_accuracy_from_a_pretrained_base(self):
        """GRPO itself, from a fixed small base (tests/data/tiny-r1-zero-base: the demo's seed-1 base,
        25.5% right on the held-out 3-digit sums, mostly answering bare): 30 steps with the accuracy
        reward alone must lift greedy held-out accuracy by at least 40 points and make it reason, as
        the demo does. Fails if GRPO stops improving the policy."""
        data = os.path.join(ROOT, "tests", "data", "tiny-r1-zero-base")
        task = os.path.join(data, "task")
        evaluate = ["eval", "--task", os.path.join(task, "test.jsonl"), "--prompt-format", "plain", "--temperature",
                    "0", "--max-new-tokens", "80", "--reward", "accuracy_math:1,format_think:0"]
        before = json.loads(r1(*evaluate, "--model", data).stdout)
        out = os.path.join(self.tmp, "grpo")
        r1("grpo", "--init", data, "--prompts", os.path.join(task, "train.jsonl"), "--prompt-template", "plain",
           "--steps", "30", "--prompts-per-step", "16", "--group-size", "8", "--micro-batch", "32", "--lr", "1e-4",
           "--temperature", "1", "--max-completion-tokens", "80", "--beta", "0", "--seed", "1",
           "--reward", "accuracy_math:1,format_think:0", "--out", out)
        after = json.loads(r1(*evaluate, "--model", out).stdout)
        self.assertAlmostEqual(before["pass@1"], 0.255, delta=0.05)  # the base as committed
        self.assertGreaterEqual(after["pass@1"] - before["pass@1"], 0.40, (before, after))
        self.assertGreater(after["think_rate"], before["think_rate"] + 0.5, (before, after))

    def test_report_is_self_contained_and_escapes_samples(self):
        run = os.path.join(self.tmp, "run")
        os.makedirs(run)
        with open(os.path.join(run, "metrics.jsonl"), "w") as f:
            for step in range(1, 11):
                f.write(json.dumps({"stage": "pretrain", "step": step, "loss": 5.0 / step, "lr": 1e-3}) + "\n")
            f.write('{"step": 11, "loss": \n')  # a line cut by a crash is skipped
        with open(os.path.join(run, "samples.jsonl"), "w") as f:
            for step in (2, 6, 10):
                f.write(json.dumps({"step": step, "prompt": "Q", "completion": "<think>a & b</think>"}) + "\n")
        subprocess.run([R1, "report", run], check=True, capture_output=True)
        with open(os.path.join(run, "report.html")) as f:
            report = f.read()
        self.assertEqual(report.count("<polyline"), 2)  # loss and lr
        self.assertEqual(len(report.split("points=\"")[1].split("\"")[0].split()), 10)
        self.assertIn("&lt;think&gt;a &amp; b&lt;/think&gt;", report)
        for step in ("early: step 2", "middle: step 6", "late: step 10"):
            self.assertIn(step, report)
        self.assertNotIn("http", report.lower().replace("http-equiv", ""))  # no network resources
        bad = subprocess.run([R1, "report", self.tmp], capture_output=True, text=True)
        self.assertIn("no metrics.jsonl", bad.stderr)


class SmolLM2R1(TempDirCase, unittest.TestCase):
    def test_fast_run_imports_trains_evaluates_and_exports(self):
        """recipes/smollm2-r1.sh FAST=1 on the real SmolLM2-135M-Instruct: the summary holds r1's own
        held-out numbers (GRPO's step-0 evaluation equals `r1 eval` of the base on the same problems),
        the held-out evaluation ran before, at every step and after, the report shows its curve and
        the chat checks, and the exported GGUF is the trained model as gguf's reader sees it."""
        import gguf
        out = os.path.join(self.tmp, "run")
        proc = subprocess.run(["bash", os.path.join(ROOT, "recipes", "smollm2-r1.sh")], cwd=ROOT,
                              env={**os.environ, "R1": R1, "OUT": out, "FAST": "1"},
                              capture_output=True, text=True, timeout=900)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
        for key in ("heldout_accuracy_before", "heldout_accuracy_after", "heldout_boxed_rate_after", "gsm8k_before",
                    "gsm8k_after", "grpo_step_seconds", "seconds"):
            self.assertIsInstance(summary[key], (int, float), key)
        evals = [json.loads(l) for l in open(os.path.join(out, "grpo", "metrics.jsonl")) if '"grpo_eval"' in l]
        self.assertEqual([e["step"] for e in evals], [0, 1, 2])
        self.assertEqual(evals[0]["heldout_problems"], 8)
        base = json.loads(r1("eval", "--model", os.path.join(out, "base"), "--task",
                             os.path.join(out, "task", "test.jsonl"), "--temperature", 0, "--max-new-tokens", 24).stdout)
        self.assertEqual(summary["heldout_accuracy_before"], base["pass@1"])
        self.assertEqual(evals[-1]["heldout_accuracy"], summary["heldout_accuracy_after"])
        with open(os.path.join(out, "gsm8k-after.json")) as f:
            self.assertEqual(json.load(f)["problems"], 4)
        with open(os.path.join(out, "report.html")) as f:
            report = f.read()
        self.assertIn("heldout_accuracy", report)
        self.assertIn("Chat checks:", report)
        self.assertIn("What is the capital of France?", report)
        # The trained model keeps its chat template, and its GGUF holds it and the trained weights.
        with open(os.path.join(out, "grpo", "tokenizer_config.json")) as f:
            self.assertIn("<|im_start|>", json.load(f)["chat_template"])
        reader = gguf.GGUFReader(os.path.join(out, "smollm2-r1.q8_0.gguf"))
        self.assertEqual(reader.fields["general.architecture"].contents(), "llama")
        self.assertIn("<|im_start|>", reader.fields["tokenizer.chat_template"].contents())
        self.assertEqual(len(reader.tensors), 272)


if __name__ == "__main__":
    unittest.main()
