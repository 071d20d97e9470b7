"""Distillation (recipes/tiny-r1.sh, FAST): a teacher that reasons column by column on sums of
one- and two-digit numbers (held out: one-digit sums, whose column facts it has seen) is
rejection-sampled, and a randomly initialised student fine-tuned on its kept answers gains
held-out accuracy over its starting point; a student whose tokenizer differs from the teacher's
is refused with a message that names the first differing token."""
import json
import os
import subprocess
import unittest

from r1test import R1, TempDirCase, r1, write_json

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


class Distill(TempDirCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.task = os.path.join(self.tmp, "task")
        r1("data", "arithmetic", "--out", self.task, "--min-digits", 1, "--max-digits", 2, "--test-digits", 1,
           "--think-fraction", 1, "--corpus-documents", 8000, "--train-problems", 300, "--test-problems", 40, "--seed", 2)
        self.tok = os.path.join(self.tmp, "tokenizer.json")
        r1("tokenizer", "train", "--input", os.path.join(self.task, "corpus.jsonl"), "--field", "text", "--vocab-size",
           320, "--pattern", "qwen2", "--special", "<|eos|>", "--out", self.tok)
        self.data = os.path.join(self.tmp, "data")
        r1("data", "prepare", "--tokenizer", self.tok, "--input", os.path.join(self.task, "corpus.jsonl"), "--eos",
           "<|eos|>", "--out", self.data)

    def test_student_learns_from_teacher_traces(self):
        from tokenizers import Tokenizer
        cfg = os.path.join(self.tmp, "teacher.json")
        write_json(cfg, {"architectures": ["LlamaForCausalLM"], "vocab_size": 320, "hidden_size": 64,
                         "intermediate_size": 192, "num_hidden_layers": 2, "num_attention_heads": 4,
                         "num_key_value_heads": 4, "max_position_embeddings": 128, "tie_word_embeddings": True,
                         "eos_token_id": Tokenizer.from_file(self.tok).token_to_id("<|eos|>")})
        teacher = os.path.join(self.tmp, "teacher")
        r1("pretrain", "--model-config", cfg, "--tokenizer", self.tok, "--data", self.data, "--out", teacher,
           "--steps", 1200, "--seq-len", 64, "--batch-tokens", 2048, "--micro-batch", 32, "--lr", "3e-3",
           "--warmup-steps", 20, "--schedule", "cosine", "--seed", 1)
        out = os.path.join(self.tmp, "distill")
        env = dict(os.environ, R1=R1, TEACHER=teacher, TASK=self.task, DATA=self.data, TOKENIZER=self.tok, OUT=out,
                   FAST="1")
        proc = subprocess.run(["bash", os.path.join(ROOT, "recipes", "tiny-r1.sh")], env=env, capture_output=True,
                              text=True, timeout=900)
        self.assertEqual(proc.returncode, 0, proc.stdout[-2000:] + proc.stderr[-2000:])
        with open(os.path.join(out, "distill.json")) as f:
            d = json.load(f)
        self.assertGreater(d["traces_kept"], 100)
        self.assertGreater(d["teacher_accuracy"], 0.5, d)
        self.assertGreaterEqual(d["student_distilled_accuracy"], d["student_base_accuracy"] + 0.3, d)
        self.assertGreater(d["student_distilled_think_rate"], 0.9, d)
        self.assertIn("tiny R1 distillation", proc.stdout)

    def test_tokenizer_mismatch_is_refused(self):
        other = os.path.join(self.tmp, "other.json")
        corpus = os.path.join(self.tmp, "other.txt")
        with open(corpus, "w") as f:
            f.write("completely different words here\n" * 50)
        r1("tokenizer", "train", "--input", corpus, "--vocab-size", 280, "--special", "<|eos|>", "--out", other)
        teacher = os.path.join(self.tmp, "t")
        r1("model", "init", "--preset", "tiny", "--out", teacher)
        os.replace(other, os.path.join(teacher, "tokenizer.json"))
        traces = os.path.join(self.tmp, "traces.jsonl")
        with open(traces, "w") as f:
            f.write(json.dumps({"prompt": "Q: 1+2=? A:", "completion": " <answer>3</answer>"}) + "\n")
        proc = r1("sft", "--preset", "tiny", "--tokenizer", self.tok, "--teacher", teacher, "--data", traces, "--out",
                  os.path.join(self.tmp, "s"), "--steps", 1, "--seq-len", 32, "--batch-tokens", 32, "--micro-batch", 1,
                  check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("differ", proc.stderr)
        self.assertIn("build the student with the teacher's tokenizer.json", proc.stderr)


if __name__ == "__main__":
    unittest.main()
