"""r1 rm train / score: a reward model learns a property that separates chosen from rejected
(held-out pairwise accuracy well above chance), its directory loads in transformers as a
LlamaForSequenceClassification with the same scores, scoring is deterministic and survives a
reload, labelled (pointwise) data trains too, a killed run resumed from its last checkpoint ends
with the weights of an uninterrupted one, and bad rows are clear errors."""
import json
import os
import random
import signal
import subprocess
import unittest

from r1test import R1, TempDirCase, make_question_model, r1, wait_for_checkpoint


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def preference_rows(n, seed):
    """chosen states the right sum, rejected a wrong one: learnable from the text alone."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randrange(5), rng.randrange(5)
        wrong = (a + b + rng.choice([1, 2, 3])) % 10
        rows.append({"prompt": f"question: what is {a} plus {b}? ", "chosen": f"answer: {a + b}.",
                     "rejected": f"answer: {wrong}."})
    return rows


class RewardModel(TempDirCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.base = make_question_model(self.tmp, 300, 300, "<|eos|>", 64, 3)
        self.train = os.path.join(self.tmp, "pairs.jsonl")
        write_jsonl(self.train, preference_rows(600, 1))
        self.val = os.path.join(self.tmp, "val.jsonl")
        write_jsonl(self.val, preference_rows(100, 2))

    def test_learns_preferences_and_matches_transformers(self):
        out = os.path.join(self.tmp, "rm")
        proc = r1("rm", "train", "--init", self.base, "--data", self.train, "--val-data", self.val, "--out", out,
                  "--epochs", 3, "--batch-size", 16, "--lr", "3e-3", "--threads", 1, "--seed", 1)
        with open(os.path.join(out, "metrics.jsonl")) as f:
            metrics = [json.loads(l) for l in f]
        val = [m for m in metrics if "val_accuracy" in m]
        self.assertEqual(val[0]["step"], 0)
        self.assertGreater(val[-1]["val_accuracy"], 0.9, val)
        self.assertIn("held-out accuracy", proc.stdout)
        with open(os.path.join(out, "config.json")) as f:
            cfg = json.load(f)
        self.assertEqual(cfg["architectures"], ["LlamaForSequenceClassification"])
        self.assertEqual(cfg["id2label"], {"0": "LABEL_0"})

        scored = os.path.join(self.tmp, "scored.jsonl")
        r1("rm", "score", "--model", out, "--input", self.val, "--out", scored, "--threads", 1)
        def scores(path):
            with open(path) as f:
                return [json.loads(l)["chosen_score"] for l in f]
        again = os.path.join(self.tmp, "again.jsonl")
        r1("rm", "score", "--model", out, "--input", self.val, "--out", again, "--threads", 1)
        self.assertEqual(scores(scored), scores(again))  # deterministic
        r1("rm", "score", "--model", out, "--input", self.val, "--out", again, "--threads", 1, "--batch", 7)
        for x, y in zip(scores(scored), scores(again)):  # other batches pad differently: rounding only
            self.assertAlmostEqual(x, y, delta=1e-4)
        with open(scored) as f:
            ours = [json.loads(l) for l in f]

        # The same directory in transformers: same scores for the same texts.
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained(out, dtype=torch.float32).eval()
        self.assertEqual(model.config.num_labels, 1)
        tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
        with torch.no_grad():
            for row in ours[:20]:
                for key in ("chosen", "rejected"):
                    ids = torch.tensor([tok.encode(row["prompt"] + row[key]).ids])
                    hf = model(input_ids=ids).logits[0, 0].item()
                    self.assertAlmostEqual(hf, row[key + "_score"], delta=1e-4)

    def test_data_parallel_and_sharded_training(self):
        """r1 launch --nproc 2: each rank trains on half of every batch, and the reward model equals
        one process's (within 1e-4 after 38 steps: the gradient is summed in another order, measured
        4e-5); --zero 1 equals plain data parallelism bit for bit, 2 and 3 within 1e-6, with rank 0
        alone writing metrics and the model."""
        from safetensors.numpy import load_file
        def train(out, *launch, extra=()):
            args = ["rm", "train", "--init", self.base, "--data", self.train, "--val-data", self.val, "--out", out,
                    "--epochs", 1, "--batch-size", 16, "--lr", "3e-3", "--threads", 1, "--seed", 1, *extra]
            r1(*launch, *(["--"] if launch else []), *args)
            with open(os.path.join(out, "metrics.jsonl")) as f:
                return load_file(os.path.join(out, "model.safetensors")), [json.loads(l) for l in f]
        diff = lambda a, b: max(float(abs(a[k] - b[k]).max()) for k in a)
        one, m1 = train(os.path.join(self.tmp, "one"))
        two, m2 = train(os.path.join(self.tmp, "two"), "launch", "--nproc", 2)
        self.assertLess(diff(one, two), 1e-4)
        self.assertEqual([m["step"] for m in m1], [m["step"] for m in m2])  # one writer
        for x, y in zip(m1, m2):
            for key in ("loss", "accuracy", "val_accuracy"):
                if key in x:
                    self.assertAlmostEqual(x[key], y[key], delta=1e-3)
        for zero in ("1", "2", "3"):
            sharded, _ = train(os.path.join(self.tmp, "zero" + zero), "launch", "--nproc", 2, extra=("--zero", zero))
            self.assertLess(diff(two, sharded), 1e-6 if zero != "1" else 1e-12, zero)

    def test_lora_reward_model_is_a_peft_adapter(self):
        """--lora-rank: the adapters and the score head train (the head whole: PEFT's
        modules_to_save of task SEQ_CLS), the base stays frozen and is not copied; PyPI's peft
        loads the directory onto transformers' LlamaForSequenceClassification of the base with
        r1's scores, and r1 scores with it; an adapter saving any other module whole is refused."""
        import torch
        from peft import PeftModel
        from safetensors.torch import load_file
        from tokenizers import Tokenizer
        from transformers import AutoModelForSequenceClassification
        out = os.path.join(self.tmp, "rm-lora")
        r1("rm", "train", "--init", self.base, "--data", self.train, "--val-data", self.val, "--out", out,
           "--epochs", 3, "--batch-size", 16, "--lr", "3e-3", "--threads", 1, "--seed", 1, "--lora-rank", 8,
           "--lora-alpha", 16, "--lora-targets", "all-linear")
        self.assertFalse(os.path.exists(os.path.join(out, "model.safetensors")))
        with open(os.path.join(out, "adapter_config.json")) as f:
            cfg = json.load(f)
        self.assertEqual((cfg["task_type"], cfg["modules_to_save"]), ("SEQ_CLS", ["classifier", "score"]))
        tensors = load_file(os.path.join(out, "adapter_model.safetensors"))
        self.assertEqual(tuple(tensors["base_model.model.score.weight"].shape), (1, 64))
        with open(os.path.join(out, "metrics.jsonl")) as f:
            val = [m for m in map(json.loads, f) if "val_accuracy" in m]
        self.assertGreater(val[-1]["val_accuracy"], 0.8, val)
        scored = os.path.join(self.tmp, "scored.jsonl")
        r1("rm", "score", "--model", out, "--input", self.val, "--out", scored, "--threads", 1)
        with open(scored) as f:
            ours = [json.loads(l) for l in f]
        model = AutoModelForSequenceClassification.from_pretrained(self.base, num_labels=1, dtype=torch.float32)
        model = PeftModel.from_pretrained(model, out).eval()
        tok = Tokenizer.from_file(os.path.join(self.base, "tokenizer.json"))
        with torch.no_grad():
            for row in ours[:10]:
                for key in ("chosen", "rejected"):
                    ids = torch.tensor([tok.encode(row["prompt"] + row[key]).ids])
                    self.assertAlmostEqual(model(input_ids=ids).logits[0, 0].item(), row[key + "_score"], delta=1e-4)
        merged, merged_scored = os.path.join(self.tmp, "rm-merged"), os.path.join(self.tmp, "merged.jsonl")
        r1("model", "merge-lora", "--adapter", out, "--out", merged)
        r1("rm", "score", "--model", merged, "--input", self.val, "--out", merged_scored, "--threads", 1)
        with open(merged_scored) as f:
            for x, y in zip(ours, map(json.loads, f)):
                self.assertAlmostEqual(x["chosen_score"], y["chosen_score"], delta=1e-4)
        cfg["modules_to_save"] = ["embed_tokens"]
        with open(os.path.join(out, "adapter_config.json"), "w") as f:
            json.dump(cfg, f)
        proc = r1("rm", "score", "--model", out, "--input", self.val, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("modules_to_save", proc.stderr)

    def test_bf16_precision_learns_with_fp32_weights(self):
        from safetensors.numpy import load_file
        outs = {}
        for precision in ("fp32", "bf16"):
            out = os.path.join(self.tmp, "rm-" + precision)
            r1("rm", "train", "--init", self.base, "--data", self.train, "--val-data", self.val, "--out", out,
               "--epochs", 3, "--batch-size", 16, "--lr", "3e-3", "--threads", 1, "--seed", 1, "--log-every", 1,
               "--precision", precision)
            with open(os.path.join(out, "metrics.jsonl")) as f:
                outs[precision] = [json.loads(l) for l in f]
            weights = load_file(os.path.join(out, "model.safetensors"))
            self.assertTrue(all(str(w.dtype) == "float32" for w in weights.values()))  # fp32 master weights
        fp32, bf16 = ([m["loss"] for m in outs[p] if "loss" in m] for p in ("fp32", "bf16"))
        self.assertNotEqual(fp32[0], bf16[0])  # the products really ran in bf16 ...
        self.assertAlmostEqual(fp32[0], bf16[0], delta=0.02)  # ... on the same first batch
        # It learns, though less sharply than fp32 on this task whose pairs differ in one digit (0.89
        # against 0.99 held out after 3 epochs: bf16 products round the backbone's activations).
        final = {p: [m for m in outs[p] if "val_accuracy" in m][-1]["val_accuracy"] for p in outs}
        self.assertGreater(final["fp32"], 0.9, final)
        self.assertGreater(final["bf16"], 0.8, final)
        proc = r1("rm", "train", "--init", self.base, "--data", self.train, "--out", os.path.join(self.tmp, "x"),
                  "--precision", "fp8", check=False)
        self.assertIn("expected auto, fp32 or bf16", proc.stderr)

    def test_pointwise_labels(self):
        rows = []
        for r in preference_rows(300, 3):
            rows.append({"prompt": r["prompt"], "response": r["chosen"], "label": 1})
            rows.append({"prompt": r["prompt"], "response": r["rejected"], "label": 0})
        data = os.path.join(self.tmp, "labelled.jsonl")
        write_jsonl(data, rows)
        out = os.path.join(self.tmp, "rm-point")
        r1("rm", "train", "--init", self.base, "--data", data, "--val-fraction", "0.2", "--out", out, "--epochs", 8,
           "--batch-size", 16, "--lr", "3e-3", "--threads", 1)
        with open(os.path.join(out, "metrics.jsonl")) as f:
            val = [json.loads(l) for l in f if "val_accuracy" in l]
        # Chance is ~0.55 before training; 0.84-0.9 after, depending on float rounding (kernels, threads).
        self.assertGreater(val[-1]["val_accuracy"], 0.8, val)
        self.assertGreater(val[-1]["val_accuracy"], val[0]["val_accuracy"] + 0.2, val)

    def test_sigkill_and_resume_give_identical_weights(self):
        from safetensors.numpy import load_file

        def args(out, *extra):
            return [R1, "rm", "train", "--init", self.base, "--data", self.train, "--val-fraction", "0.1", "--out", out,
                    "--epochs", "2", "--batch-size", "16", "--lr", "3e-3", "--threads", "1", "--seed", "3",
                    "--log-every", "1", "--eval-every", "20", *map(str, extra)]

        def weights(out):
            return load_file(os.path.join(out, "model.safetensors"))

        straight = os.path.join(self.tmp, "straight")
        subprocess.run(args(straight), check=True, capture_output=True)
        killed = os.path.join(self.tmp, "killed")
        proc = subprocess.Popen(args(killed, "--save-every", 1), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        state = os.path.join(killed, "trainer_state", "state.json")
        wait_for_checkpoint(state, 40)  # past the first epoch: the resumed run replays its shuffle
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with open(state) as f:
            stopped_at = json.load(f)["step"]
        self.assertLess(stopped_at, 68, "the run finished before it could be killed")
        # A different seed (a different data order) is refused; the same flags continue.
        other_seed = [x if x != "3" else "4" for x in map(str, args(killed, "--resume"))]
        proc = subprocess.run(other_seed, capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("the run used seed 3, this one 4", proc.stderr)
        proc = subprocess.run(args(killed, "--resume"), check=True, capture_output=True, text=True)
        self.assertIn("held-out accuracy", proc.stdout)
        a, b = weights(straight), weights(killed)
        self.assertEqual(a.keys(), b.keys())
        for k in a:
            self.assertTrue((a[k] == b[k]).all(), f"{k} differs after kill at step {stopped_at} + resume")
        with open(os.path.join(straight, "metrics.jsonl")) as f:
            expected = [json.loads(l) for l in f]
        with open(os.path.join(killed, "metrics.jsonl")) as f:
            resumed = [json.loads(l) for l in f]
        self.assertEqual([(m["step"], sorted(m)) for m in expected], [(m["step"], sorted(m)) for m in resumed])
        # A finished model is not overwritten without --resume.
        proc = subprocess.run(args(killed), capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("already holds a model: pass --resume", proc.stderr)

    def test_bad_input(self):
        bad = os.path.join(self.tmp, "bad.jsonl")
        out = os.path.join(self.tmp, "x")
        for content, needle in (('{"prompt": "p", "chosen": "a"}\n', "bad.jsonl:1: missing field 'rejected'"),
                                ('{"prompt": "p", "response": "a"}\n', "missing field 'label'"),
                                ('{"prompt": "p", "response": "a", "label": 3}\n', "'label' must be in [0, 1]"),
                                ('{"prompt": "p", "chosen": "a", "rejected": "b"}\nnot json\n', "bad.jsonl:2: invalid JSON"),
                                ('{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
                                 '{"prompt": "p", "response": "a", "label": 1}\n', "mixes preference pairs"),
                                ("", "no examples")):
            with open(bad, "w") as f:
                f.write(content)
            proc = r1("rm", "train", "--init", self.base, "--data", bad, "--out", out, check=False)
            self.assertNotEqual(proc.returncode, 0, content)
            self.assertIn(needle, proc.stderr, content)
        # Scoring with a causal LM (no reward head) is refused.
        proc = r1("rm", "score", "--model", self.base, "--input", self.val, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("not a reward model", proc.stderr)


if __name__ == "__main__":
    unittest.main()
