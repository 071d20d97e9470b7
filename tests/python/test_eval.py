"""r1 eval: grading existing responses (the --responses contract), the built-in task readers on
../shared/data, and the reported metrics against an independent computation from the
per-sample verdicts (pass@k with math.comb)."""
import json
import math
import os
import subprocess
import sys
import unittest

from r1test import make_question_model, TempDirCase, r1

DATA = os.environ.get("R1_SHARED_DATA", "")


class Eval(TempDirCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.model = make_question_model(self.tmp, 200, 300, "<|eos|>", 2048, 5)

    def test_grading_responses_gives_exact_scores_in_order(self):
        lines = [
            {"problem": "1/2?", "response": "<think>easy</think> \\boxed{\\frac{1}{2}}", "answer": "0.5"},
            {"problem": "2+2?", "response": "\\boxed{5}", "answer": "4"},
            {"problem": "x?", "response": "no idea", "answer": "3"},
            {"problem": "hedge", "response": "\\boxed{1} or \\boxed{2}", "answer": "1"},
            {"problem": "set", "response": "\\boxed{\\{3, 1, 2\\}}", "answer": "\\{1,2,3\\}"},
        ]
        path = os.path.join(self.tmp, "responses.jsonl")
        with open(path, "w") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
        out = os.path.join(self.tmp, "graded.jsonl")
        proc = r1("eval", "--responses", path, "--reward", "accuracy_math:1,format_think:0.5", "--out", out)
        with open(out) as f:
            graded = [json.loads(l) for l in f]
        self.assertEqual([g["index"] for g in graded], list(range(5)))
        self.assertEqual([g["score"] for g in graded], [1.5, 0, 0, 0, 1])
        self.assertEqual(graded[3]["reason"], "several different boxed answers")
        self.assertEqual(graded[2]["reason"], "no answer found")
        summary = json.loads(proc.stdout)
        self.assertEqual(summary["responses"], 5)
        self.assertAlmostEqual(summary["accuracy"], 2 / 5)
        bad = os.path.join(self.tmp, "bad.jsonl")
        with open(bad, "w") as f:
            f.write('{"response": "x", "answer": "1"}\n{"answer": "2"}\n')
        self.assertIn("bad.jsonl:2", r1("eval", "--responses", bad, check=False).stderr)
        self.assertIn("unknown reward", r1("eval", "--responses", path, "--reward", "nope", check=False).stderr)

    def test_metrics_match_an_independent_computation(self):
        task = os.path.join(self.tmp, "task.jsonl")
        with open(task, "w") as f:
            for i in range(6):
                f.write(json.dumps({"problem": f"question {i}: what is", "answer": str(i)}) + "\n")
        script = os.path.join(self.tmp, "parity.py")
        with open(script, "w") as f:  # correct when the response has an even number of characters
            f.write("import json, sys\nd = json.load(sys.stdin)\nprint(1 if len(d['completion']) % 2 == 0 else 0)\n")
        out = os.path.join(self.tmp, "eval")
        proc = r1("eval", "--task", task, "--model", self.model, "--prompt-format", "plain", "--n", "4",
                  "--temperature", "1", "--seed", "3", "--max-new-tokens", "6", "--reward", "external",
                  "--reward-command", f"{sys.executable} {script}", "--out-dir", out, "--threads", "1")
        summary = json.loads(proc.stdout)
        with open(os.path.join(out, "samples.jsonl")) as f:
            samples = [json.loads(l) for l in f]
        self.assertEqual(len(samples), 24)
        by_id = {}
        for s in samples:
            self.assertEqual(s["correct"], len(s["response"]) % 2 == 0)
            by_id.setdefault(s["id"], []).append(s["correct"])

        def pass_at_k(n, c, k):
            return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)

        for k in (1, 2, 4):
            want = sum(pass_at_k(4, sum(v), k) for v in by_id.values()) / len(by_id)
            self.assertAlmostEqual(summary[f"pass@{k}"], want, places=9)
        self.assertGreater(summary["pass@4"], summary["pass@1"])  # the test exercises k > 1
        self.assertAlmostEqual(summary["mean_response_tokens"], sum(s["completion_tokens"] for s in samples) / 24)
        self.assertEqual(summary["problems"], 6)
        self.assertTrue(os.path.exists(os.path.join(out, "summary.json")))

    def test_builtin_task_readers(self):
        for task in ("gsm8k", "math500", "aime24", "amc23", "minerva_math", "humaneval"):
            proc = r1("eval", "--task", task, "--model", self.model, "--prompt-format", "plain", "--limit", "2",
                      "--max-new-tokens", "2", "--temperature", "0", "--data-dir", DATA, "--threads", "1")
            summary = json.loads(proc.stdout)
            self.assertEqual(summary["problems"], 2, task)
            self.assertEqual(summary["reward"], "accuracy_code" if task == "humaneval" else "accuracy_math")
        self.assertIn("neither a built-in task", r1("eval", "--task", "nope", "--model", self.model,
                                                     check=False).stderr)


if __name__ == "__main__":
    unittest.main()
