"""r1 pretrain end to end: the loss falls on learnable data, and a run killed with SIGKILL (or
stopped with SIGTERM) and resumed ends with exactly the same weights as an uninterrupted run."""
import json
import os
import signal
import subprocess
import time
import unittest

from safetensors.numpy import load_file

from r1test import kill_at_checkpoint, R1, TempDirCase, r1

COMMON = ["--preset", "tiny", "--seq-len", "32", "--batch-tokens", "256", "--micro-batch", "4", "--lr", "3e-3",
          "--warmup-steps", "2", "--schedule", "cosine", "--seed", "5", "--threads", "1"]


class Pretrain(TempDirCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        corpus = os.path.join(self.tmp, "corpus.txt")
        with open(corpus, "w") as f:  # a learnable, repetitive text
            for i in range(400):
                f.write(f"step {i % 10} of the counting song goes one two three four five.\n")
        self.tok = os.path.join(self.tmp, "tokenizer.json")
        r1("tokenizer", "train", "--input", corpus, "--vocab-size", "512", "--special", "<|eos|>", "--out", self.tok)
        self.data = os.path.join(self.tmp, "data")
        r1("data", "prepare", "--tokenizer", self.tok, "--input", corpus, "--eos", "<|eos|>", "--out", self.data)

    def run_args(self, out, steps, *extra):
        return [R1, "pretrain", *COMMON, "--tokenizer", self.tok, "--data", self.data, "--out", out,
                "--steps", str(steps), *extra]

    def weights(self, out):
        return load_file(os.path.join(out, "model.safetensors"))

    def metrics(self, out):
        with open(os.path.join(out, "metrics.jsonl")) as f:
            return [json.loads(l) for l in f]

    def test_loss_falls_and_metrics_are_logged(self):
        out = os.path.join(self.tmp, "run")
        subprocess.run(self.run_args(out, 25), check=True, capture_output=True)
        m = self.metrics(out)
        self.assertEqual([r["step"] for r in m], list(range(1, 26)))
        for key in ("loss", "lr", "tokens_per_s", "grad_norm"):
            self.assertIn(key, m[0])
        self.assertLess(m[-1]["loss"], 0.5 * m[0]["loss"])
        self.assertTrue(os.path.exists(os.path.join(out, "tokenizer.json")))
        # args.toml holds the options in effect; --config reads it back, flags still win.
        again = os.path.join(self.tmp, "again")
        subprocess.run([R1, "pretrain", "--config", os.path.join(out, "args.toml"), "--out", again, "--steps", "3"],
                       check=True, capture_output=True)
        with open(os.path.join(out, "args.toml")) as f:
            first = f.read()
        with open(os.path.join(again, "args.toml")) as f:
            second = f.read()
        self.assertIn('lr=3e-3', first.replace(" ", ""))
        self.assertEqual(second.replace(again, out).replace("steps=3", "steps=25"), first)
        self.assertEqual(self.metrics(again)[0]["loss"], m[0]["loss"])  # the same run, from the file

    def test_validation_loss_and_bits_per_byte(self):
        import math
        out = os.path.join(self.tmp, "val")
        subprocess.run(self.run_args(out, 20, "--val-data", self.data, "--eval-every", "10", "--sample-every", "10",
                                     "--sample-prompt", "step 3 of"), check=True, capture_output=True)
        with open(os.path.join(out, "samples.jsonl")) as f:
            samples = [json.loads(l) for l in f]
        self.assertEqual([s["step"] for s in samples], [10, 20])
        self.assertTrue(all(s["prompt"] == "step 3 of" and s["completion"] for s in samples))
        evals = [r for r in self.metrics(out) if "val_loss" in r]
        self.assertEqual([r["step"] for r in evals], [10, 20])
        self.assertLess(evals[1]["val_loss"], evals[0]["val_loss"])
        # bits/byte = nats / ln 2 / bytes: the implied bytes per target token must be plausible
        # for this English text (between 1 and 8), and the same at both evaluations (same batches).
        ratios = [r["val_loss"] / math.log(2) / r["val_bpb"] for r in evals]
        self.assertTrue(all(1 < x < 8 for x in ratios), ratios)
        self.assertAlmostEqual(ratios[0], ratios[1], places=6)
        self.assertTrue(all(0 < r["mfu"] < 1 for r in self.metrics(out)))

    def test_sigkill_and_resume_give_identical_weights(self):
        straight = os.path.join(self.tmp, "straight")
        subprocess.run(self.run_args(straight, 8), check=True, capture_output=True)
        killed = os.path.join(self.tmp, "killed")
        stopped_at = kill_at_checkpoint(self.run_args(killed, 8, "--save-every", "1"), killed, 3)
        self.assertLess(stopped_at, 8, "the run finished before it could be killed")
        subprocess.run(self.run_args(killed, 8, "--resume"), check=True, capture_output=True)
        a, b = self.weights(straight), self.weights(killed)
        self.assertEqual(a.keys(), b.keys())
        for k in a:
            self.assertTrue((a[k] == b[k]).all(), f"{k} differs after kill at step {stopped_at} + resume")
        self.assertEqual([r["step"] for r in self.metrics(killed)], list(range(1, 9)))

    def test_bf16_autocast_keeps_fp32_master_weights(self):
        fp32, bf16 = os.path.join(self.tmp, "fp32"), os.path.join(self.tmp, "bf16")
        subprocess.run(self.run_args(fp32, 12), check=True, capture_output=True)
        subprocess.run(self.run_args(bf16, 12, "--precision", "bf16"), check=True, capture_output=True)
        a, b = self.metrics(fp32), self.metrics(bf16)
        # Same start, computed in bfloat16: close to fp32 but not equal (autocast is on), and it learns.
        self.assertNotEqual(a[0]["loss"], b[0]["loss"])
        self.assertAlmostEqual(a[0]["loss"], b[0]["loss"], delta=0.02)
        self.assertLess(b[-1]["loss"], 0.7 * b[0]["loss"])
        self.assertTrue(all(w.dtype.name == "float32" for w in self.weights(bf16).values()))
        proc = subprocess.run(self.run_args(os.path.join(self.tmp, "fp8"), 2, "--precision", "fp8"),
                              capture_output=True, text=True)
        self.assertIn("expected auto, fp32 or bf16", proc.stderr)

    def test_checkpointed_activations_give_the_same_run(self):
        """--checkpoint-activations recomputes each layer in the backward pass: the same losses and
        weights as keeping the activations (float rounding apart); SFT runs the same loop."""
        plain, recomputed = os.path.join(self.tmp, "plain"), os.path.join(self.tmp, "recomputed")
        subprocess.run(self.run_args(plain, 6), check=True, capture_output=True)
        subprocess.run(self.run_args(recomputed, 6, "--checkpoint-activations"), check=True, capture_output=True)
        for x, y in zip(self.metrics(plain), self.metrics(recomputed)):
            self.assertAlmostEqual(x["loss"], y["loss"], delta=1e-5)
        a, b = self.weights(plain), self.weights(recomputed)
        self.assertLess(max(float(abs(a[k] - b[k]).max()) for k in a), 1e-5)

    def test_keep_last_checkpoints(self):
        import shutil
        out = os.path.join(self.tmp, "keep")
        subprocess.run(self.run_args(out, 8, "--save-every", "2", "--keep-checkpoints", "2"), check=True,
                       capture_output=True)
        kept = sorted(os.listdir(os.path.join(out, "checkpoints")))
        self.assertEqual(kept, ["step-00000006", "step-00000008"])
        final = self.weights(out)
        last = self.weights(os.path.join(out, "checkpoints", "step-00000008"))
        self.assertTrue(all((final[k] == last[k]).all() for k in final))
        # An older checkpoint is a complete run: resumed to the end, it gives the final weights.
        older = os.path.join(self.tmp, "from6")
        shutil.copytree(os.path.join(out, "checkpoints", "step-00000006"), older)
        self.assertFalse((self.weights(older)["model.norm.weight"] == final["model.norm.weight"]).all())
        subprocess.run(self.run_args(older, 8, "--resume"), check=True, capture_output=True)
        resumed = self.weights(older)
        for k in final:
            self.assertTrue((final[k] == resumed[k]).all(), k)

    def test_sigterm_saves_and_exits_cleanly(self):
        out = os.path.join(self.tmp, "term")
        proc = subprocess.Popen(self.run_args(out, 100000), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0)
        self.assertIn("stopped at step", stdout)
        step = json.load(open(os.path.join(out, "trainer_state", "state.json")))["step"]
        self.assertGreater(step, 0)

    def test_sft_learns_the_answers(self):
        import random
        rng = random.Random(0)
        chats = os.path.join(self.tmp, "chats.jsonl")
        with open(chats, "w") as f:
            for _ in range(200):
                a, b = rng.randint(0, 9), rng.randint(0, 9)
                f.write(json.dumps({"messages": [{"role": "user", "content": f"{a} plus {b}?"},
                                                 {"role": "assistant", "content": f"{a + b}."}]}) + "\n")
        tok = os.path.join(self.tmp, "chat_tokenizer.json")
        r1("tokenizer", "train", "--input", chats, "--vocab-size", "512", "--special", "<|im_start|>,<|im_end|>",
           "--out", tok)
        out = os.path.join(self.tmp, "sft")
        subprocess.run([R1, "sft", "--preset", "tiny", "--tokenizer", tok, "--data", chats, "--chat-template", "chatml",
                        "--out", out, "--steps", "30", "--seq-len", "32", "--batch-tokens", "512", "--micro-batch", "8",
                        "--lr", "3e-3", "--warmup-steps", "3", "--threads", "1"], check=True, capture_output=True)
        m = self.metrics(out)
        self.assertEqual(m[0]["stage"], "sft")
        self.assertLess(m[-1]["loss"], 0.5 * m[0]["loss"])
        # Packed into 65-token rows (several conversations each), the same tokens per step carry
        # more conversations than padded rows of one, so the loss falls further in the same steps;
        # it is still the same task (no conversation sees another).
        packed = os.path.join(self.tmp, "sft-packed")
        subprocess.run([R1, "sft", "--preset", "tiny", "--tokenizer", tok, "--data", chats, "--chat-template", "chatml",
                        "--out", packed, "--steps", "30", "--seq-len", "64", "--batch-tokens", "512", "--micro-batch",
                        "8", "--lr", "3e-3", "--warmup-steps", "3", "--threads", "1", "--pack"], check=True,
                       capture_output=True)
        p = self.metrics(packed)
        self.assertLess(p[-1]["loss"], 0.5 * p[0]["loss"])
        self.assertLess(p[-1]["loss"], m[-1]["loss"])

    def test_long_context_extension_writes_scaled_rope(self):
        base = os.path.join(self.tmp, "base")
        subprocess.run(self.run_args(base, 3), check=True, capture_output=True)
        longer = os.path.join(self.tmp, "long")
        args = self.run_args(longer, 2, "--init", base, "--rope-scaling", "linear:4")
        args[args.index("--seq-len") + 1] = "128"  # 4x the base run's sequence length
        args[args.index("--batch-tokens") + 1] = "1024"
        i = args.index("--preset")
        del args[i:i + 2]
        subprocess.run(args, check=True, capture_output=True)
        with open(os.path.join(base, "config.json")) as f:
            base_cfg = json.load(f)
        with open(os.path.join(longer, "config.json")) as f:
            cfg = json.load(f)
        self.assertEqual(cfg["rope_scaling"]["type"], "linear")
        self.assertEqual(cfg["rope_scaling"]["factor"], 4.0)
        self.assertEqual(cfg["max_position_embeddings"], 4 * base_cfg["max_position_embeddings"])
        # The passkey evaluation runs on both and reports every (context, depth) cell.
        res = os.path.join(self.tmp, "passkey.json")
        proc = r1("eval", "passkey", "--model", longer, "--context", "400,700", "--depths", "0,0.5,1", "--trials", "2",
                  "--out", res, "--threads", "1")
        with open(res) as f:
            cells = json.load(f)["results"]
        self.assertEqual([(c["context"], c["depth"]) for c in cells],
                         [(n, d) for n in (400, 700) for d in (0, 0.5, 1)])
        self.assertTrue(all(c["context"] - 100 < c["tokens"] <= c["context"] and c["trials"] == 2 and 0 <= c["accuracy"] <= 1 for c in cells))
        self.assertEqual(proc.stdout.count("| 700 |"), 3)
        bad = r1("eval", "passkey", "--model", base, "--depths", "1.5", check=False)
        self.assertIn("between 0 and 1", bad.stderr)
        bad = r1("eval", "passkey", "--model", base, "--context", "50", check=False)
        self.assertIn("cannot hold the task", bad.stderr)
        proc = subprocess.run(self.run_args(os.path.join(self.tmp, "bad_rope"), 2, "--init", base, "--rope-scaling",
                                            "linear"), capture_output=True, text=True)
        self.assertIn("TYPE:FACTOR", proc.stderr)

    def test_bad_flags(self):
        out = os.path.join(self.tmp, "bad")
        args = self.run_args(out, 5)
        args[args.index("--batch-tokens") + 1] = "100"
        proc = subprocess.run(args, capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("multiple of --seq-len", proc.stderr)
        subprocess.run(self.run_args(out, 2), check=True, capture_output=True)
        proc = subprocess.run(self.run_args(out, 4), capture_output=True, text=True)
        self.assertIn("--resume", proc.stderr)


if __name__ == "__main__":
    unittest.main()
