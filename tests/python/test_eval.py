"""r1 eval: grading existing responses (the --responses contract), the built-in task readers on
the project's data/, and the reported metrics against an independent computation from the
per-sample verdicts (pass@k with math.comb)."""
import json
import math
import os
import subprocess
import sys
import unittest

import r1test
from r1test import make_question_model, TempDirCase, r1

DATA = os.environ["R1_TEST_DATA"]


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
            {"problem": "think", "response": "<think>long</think> it is 3", "answer": "3"},
        ]
        path = os.path.join(self.tmp, "responses.jsonl")
        with open(path, "w") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
        out = os.path.join(self.tmp, "graded.jsonl")
        proc = r1("eval", "--responses", path, "--reward", "accuracy_math:1,format_think:0.5", "--out", out)
        with open(out) as f:
            graded = [json.loads(l) for l in f]
        self.assertEqual([g["index"] for g in graded], list(range(6)))
        self.assertEqual([g["score"] for g in graded], [1.5, 0, 0, 0, 1, 0])
        self.assertEqual(graded[3]["reason"], "several different boxed answers")
        self.assertEqual(graded[2]["reason"], "no answer found")
        summary = json.loads(proc.stdout)
        self.assertEqual(summary["responses"], 6)
        self.assertAlmostEqual(summary["accuracy"], 2 / 6)
        # Two of them think (the last without an answer, so without the R1-Zero format).
        self.assertAlmostEqual(summary["think_rate"], 2 / 6)
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

    def test_code_is_never_run_unisolated_unless_asked(self):
        """Where bubblewrap cannot isolate programs (here: none installed, R1_BWRAP=none), the code
        reward is an error before anything runs; --unsafe-no-sandbox runs them with a warning. Assert
        statements are tests of their own (one of two passes)."""
        path = os.path.join(self.tmp, "responses.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps({"response": "```python\ndef add(a, b):\n    return a + b\n```",
                                "tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 5"]}) + "\n")
        env = dict(os.environ, R1_BWRAP="none")
        args = [r1test.R1, "eval", "--responses", path, "--reward", "accuracy_code"]
        proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("--unsafe-no-sandbox", proc.stderr)
        proc = subprocess.run(args + ["--unsafe-no-sandbox"], env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("WARNING", proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["mean_score"], 0.5)
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)  # bubblewrap as found
        self.assertEqual(json.loads(proc.stdout)["mean_score"], 0.5)

    def eval_gsm8k(self, binary, cwd, env_extra=None, *extra):
        env = {k: v for k, v in os.environ.items() if k not in ("R1_TEST_DATA", "R1_DATA_DIR")}
        env.update(env_extra or {})
        return subprocess.run([binary, "eval", "--task", "gsm8k", "--model", self.model, "--prompt-format", "plain",
                               "--limit", "2", "--max-new-tokens", "2", "--temperature", "0", "--threads", "1", *extra],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=300)

    def test_builtin_tasks_are_found_from_any_directory_and_after_install(self):
        """The data ships with the project: the built binary finds it from any working directory,
        `cmake --install` copies it beside the installed binary, and --data-dir / R1_DATA_DIR
        override the lookup (a wrong one is a clear error)."""
        built = r1test.R1
        proc = self.eval_gsm8k(built, "/")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["problems"], 2)
        prefix = os.path.join(self.tmp, "prefix")
        subprocess.run(["cmake", "--install", os.path.dirname(built), "--prefix", prefix], check=True,
                       capture_output=True)
        installed = os.path.join(prefix, "bin", "r1")
        self.assertTrue(os.path.exists(os.path.join(prefix, "share", "r1", "data", "tokenizers", "qwen3",
                                                    "tokenizer.json")))
        proc = self.eval_gsm8k(installed, self.tmp)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["problems"], 2)
        missing = os.path.join(self.tmp, "nowhere")
        proc = self.eval_gsm8k(installed, self.tmp, {"R1_DATA_DIR": missing})
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(missing + "/gsm8k/test.jsonl: not found", proc.stderr)
        self.assertIn("R1_DATA_DIR", proc.stderr)
        proc = self.eval_gsm8k(installed, self.tmp, {"R1_DATA_DIR": missing}, "--data-dir", DATA)  # the flag wins
        self.assertEqual(proc.returncode, 0, proc.stderr)


if __name__ == "__main__":
    unittest.main()
