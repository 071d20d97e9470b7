"""r1's math checker against math-verify (the checker TRL and open-r1 use), on MATH-500 answer
pairs and mutations and on the hand-written cases: every disagreement must be the one listed,
with its verdict, in docs/rewards.md ("Where r1 and math-verify disagree")."""
import json
import os
import re
import sys
import tempfile
import unittest

from math_verify import parse, verify

from r1test import r1

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from math_pairs import pairs  # noqa: E402


def documented():
    text = open(os.path.join(ROOT, "docs", "rewards.md")).read()
    section = text.split("## Where r1 and math-verify disagree")[1].split("\n## ")[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`"):
            rows[(cells[0].strip("`"), cells[1].strip("`"))] = (cells[2] == "equal", cells[3] == "equal")
    return rows


class MathVerifyAgreement(unittest.TestCase):
    def test_every_disagreement_is_documented(self):
        data = os.environ["R1_TEST_DATA"]
        items = [(a, ref) for a, ref, _, _ in pairs(data)]
        with open(os.path.join(ROOT, "tests", "data", "math_equivalence_cases.jsonl")) as f:
            items += [(c["answer"], c["reference"]) for c in map(json.loads, f)]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "responses.jsonl")
            with open(path, "w") as f:
                for a, ref in items:
                    f.write(json.dumps({"response": "\\boxed{" + a + "}", "answer": ref}) + "\n")
            out = os.path.join(tmp, "graded.jsonl")
            r1("eval", "--responses", path, "--out", out)
            with open(out) as f:
                ours = [json.loads(l)["score"] == 1 for l in f]
        found = {}
        for (a, ref), o in zip(items, ours):
            try:
                theirs = bool(verify(parse("$" + ref + "$"), parse("$" + a + "$")))
            except Exception:  # noqa: BLE001 - a math-verify failure counts as "not equal"
                theirs = False
            if theirs != o:
                found[(a, ref)] = (o, theirs)
        self.assertEqual(found, documented())


if __name__ == "__main__":
    unittest.main()
