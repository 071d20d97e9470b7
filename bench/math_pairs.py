"""Answer pairs for checking math checkers: MATH-500's boxed solution answers against their
reference answers (should be equal) and mutations of the references (should differ). Shared by
bench/run_rewards.py and tests/python/test_math_verify_agreement.py. The mutation rules match
tests/test_math_verifier.cpp."""
import json
import os
import re


def boxed(text):
    out = []
    for m in re.finditer(r"\\(boxed|fbox)\s*\{", text):
        i, depth, j = m.end(), 1, m.end()
        while j < len(text) and depth:
            if text[j] == "\\" and j + 1 < len(text):
                j += 2
                continue
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth == 0:
            out.append(text[i:j - 1].strip())
    return out


def mutations(answer):
    out = []
    for i, ch in enumerate(answer):
        if ch.isdigit():
            out.append(answer[:i] + str((int(ch) + 1) % 10) + answer[i + 1:])
            break
    simple = answer.strip()
    if simple not in ("0",) and "," not in simple and "=" not in simple and "\\in" not in simple and "\\pm" not in simple:
        out.append(answer[1:] if answer.startswith("-") else "-(" + answer + ")")
    plus = answer.rfind("+")
    if plus > 0 and "(" not in answer and "{" not in answer:
        out.append(answer[:plus])
    if len(answer) > 4 and answer[0] in "([" and answer.count(",") == 1 and "\\cup" not in answer:
        comma = answer.index(",")
        left, right = answer[1:comma], answer[comma + 1:-1]
        if left.strip() != right.strip():
            out.append(answer[0] + right + "," + left + answer[-1])
    return out


def pairs(data_dir):
    """(response_answer, reference, should_be_equal, label) for MATH-500 and its mutations."""
    rows = [json.loads(l) for l in open(os.path.join(data_dir, "math500", "test.jsonl"))]
    out = []
    for r in rows:
        b = boxed(r["solution"])
        out.append((b[-1] if b else "", r["answer"], True, r["unique_id"]))
        for m in mutations(r["answer"]):
            out.append((m, r["answer"], False, r["unique_id"] + " (mutated)"))
    return out
