"""r1 sample (rejection sampling): the filters keep exactly the rows they should, checked against
the unfiltered samples of the same seeds; an interrupted run resumes into the same file with no
row lost or repeated; an empty kept set is a clear error."""
import json
import os
import signal
import subprocess
import sys
import time
import unittest

from r1test import R1, TempDirCase, make_question_model, r1, read_jsonl, tiny_policy



class RejectionSampling(TempDirCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        _, self.prompts = tiny_policy(self.tmp)
        # Sharp random weights: some answers end early (EOS), most run to the limit.
        self.base = make_question_model(self.tmp, 300, 300, "<|eos|>", 64, 3)
        self.judge = os.path.join(self.tmp, "judge.py")
        with open(self.judge, "w") as f:  # right = the answer contains an 'a'; never right when told so
            f.write("import json, os, sys\nc = json.load(sys.stdin)['completion']\n"
                    "print(0 if os.environ.get('NEVER') else (1 if 'a' in c else 0))\n")

    def args(self, out, *extra):
        return [R1, "sample", "--model", self.base, "--prompts", self.prompts, "--out", out, "--prompt-template",
                "plain", "--n", "6", "--temperature", "1", "--max-new-tokens", "12", "--reward", "external",
                "--reward-command", f"{sys.executable} {self.judge}", "--threads", "1", "--seed", "3", *extra]

    def test_filters_keep_exactly_the_expected_rows(self):
        everything = os.path.join(self.tmp, "all.jsonl")
        subprocess.run(self.args(everything, "--keep", "all", "--keep-truncated"), check=True, capture_output=True)
        rows = read_jsonl(everything)
        key = lambda r: (r["source"]["prompt_index"], r["source"]["sample"])
        self.assertTrue(all(r["prompt"].startswith("item ") and "completion" in r for r in rows))
        texts = {}
        for r in rows:  # no answer twice for one prompt
            self.assertNotIn(r["completion"], texts.setdefault(r["source"]["prompt_index"], set()))
            texts[r["source"]["prompt_index"]].add(r["completion"])
        right = [r for r in rows if r["rewards"]["external"] == 1]
        self.assertTrue(0 < len(right) < len(rows), "the fixture should have both right and wrong answers")

        def run(name, *flags):
            out = os.path.join(self.tmp, name)
            proc = subprocess.run(self.args(out, *flags), check=True, capture_output=True, text=True)
            return [key(r) for r in read_jsonl(out)], out, proc

        got, out, proc = run("correct.jsonl", "--keep", "correct", "--keep-truncated", "--min-reward", "0.5")
        self.assertEqual(got, [key(r) for r in right])
        finished = [key(r) for r in rows if r["finish_reason"] != "length"]
        self.assertTrue(0 < len(finished) < len(rows))
        self.assertEqual(run("finished.jsonl", "--keep", "all")[0], finished)  # truncated answers dropped
        short = [key(r) for r in rows if r["completion_tokens"] <= 5]
        self.assertTrue(short)
        self.assertEqual(run("short.jsonl", "--keep", "all", "--keep-truncated", "--max-tokens", "5")[0], short)
        with open(out + ".summary.json") as f:
            summary = json.load(f)
        self.assertEqual(summary["kept"], len(right))
        self.assertEqual(summary["prompts"], 16)
        prompts_right = {r["source"]["prompt_index"] for r in right}
        self.assertAlmostEqual(summary["pass_at_n"], len(prompts_right) / 16)
        self.assertEqual(sum(summary["kept_per_prompt"]), len(right))
        self.assertIn("pass@6", proc.stdout)

        best = os.path.join(self.tmp, "best.jsonl")
        subprocess.run(self.args(best, "--keep", "best", "--keep-truncated"), check=True, capture_output=True)
        first_best = {}
        for r in rows:  # the first of the highest-scoring answers of each prompt
            i = r["source"]["prompt_index"]
            if i not in first_best or r["reward"] > first_best[i]["reward"]:
                first_best[i] = r
        self.assertEqual([key(r) for r in read_jsonl(best)], sorted(key(r) for r in first_best.values()))

    def test_interrupted_run_resumes_without_loss_or_duplicates(self):
        straight = os.path.join(self.tmp, "straight.jsonl")
        subprocess.run(self.args(straight, "--keep", "all", "--batch-prompts", "2"), check=True, capture_output=True)
        cut = os.path.join(self.tmp, "cut.jsonl")
        proc = subprocess.Popen(self.args(cut, "--keep", "all", "--batch-prompts", "2"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with open(cut + ".progress.json") as f:
                    if json.load(f)["prompts_done"] >= 4:
                        break
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with open(cut + ".progress.json") as f:
            self.assertLess(json.load(f)["prompts_done"], 16)  # killed mid-run
        with open(cut, "a") as f:  # a half-written batch, as a crash mid-write would leave
            f.write('{"prompt": "item 9:", "compl')
        again = subprocess.run(self.args(cut, "--keep", "all", "--batch-prompts", "2"), capture_output=True, text=True)
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("--resume", again.stderr)
        subprocess.run(self.args(cut, "--keep", "all", "--batch-prompts", "2", "--resume"), check=True,
                       capture_output=True)
        with open(straight) as a, open(cut) as b:
            self.assertEqual(a.read(), b.read())

    def test_empty_kept_set_is_an_error(self):
        out = os.path.join(self.tmp, "none.jsonl")
        proc = subprocess.run(self.args(out), capture_output=True, text=True, env=dict(os.environ, NEVER="1"))
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("no sample passed the filters", proc.stderr)
        proc = r1("sample", "--model", self.base, "--prompts", self.prompts, "--out", out + "2", "--keep", "most",
                  check=False)
        self.assertIn("--keep 'most'", proc.stderr)


if __name__ == "__main__":
    unittest.main()
