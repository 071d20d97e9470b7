"""r1's tokenizer against the Hugging Face tokenizers library itself, on freshly generated
random strings built from the hard cases (whitespace runs, \\r\\n, digits, CJK, emoji, combining
marks, contractions, special-token text), through the `r1 tokenizer encode|decode --jsonl` contract."""
import json
import os
import random
import subprocess
import unittest

from tokenizers import Tokenizer

from r1test import R1

DATA = os.environ["R1_TEST_DATA"]
PARTS = [
    "Hello", " world", "  ", "\t", "\n", "\r\n", "\n\n\n", "   \n ", "123", "4567890", "3.14", "1,000,000",
    "don't", "I'M", "we'll", "you've", "你好", "世界和平", "こんにちは", "カタカナ", "한국어", "😀", "👩‍💻", "🇫🇷",
    "e\u0301", "a\u0308\u0304", "Ω", "ß", "ﬁ", "\u00a0", "\u3000", "x=y+z;", "def f(x):", "    return x",
    "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "<|im_end|>", "<|endoftext|>", "<｜end▁of▁sentence｜>",
    "$$\\frac{1}{2}$$", "#### 42", "\\boxed{7}", "....", "!!!", "--", "'", "\"", "Ünïcödé", "ÅÄÖ", "مرحبا", "שלום",
]


def random_strings(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = "".join(rng.choice(PARTS) for _ in range(rng.randint(1, 12)))
        if rng.random() < 0.3:  # random code points too, from blocks assigned by Unicode 14
            # (Debian 12's PCRE2 10.42 knows Unicode 14; HF's regex engine knows 16: characters
            # assigned since then classify differently, see docs/tokenizer.md).
            s += "".join(chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0x2FF),
                                          rng.randint(0x370, 0x52F), rng.randint(0x4E00, 0x9FA5),
                                          rng.randint(0x1F300, 0x1F64F)]))
                         for _ in range(rng.randint(1, 8)))
        out.append(s)
    return out


def r1_jsonl(args, lines):
    proc = subprocess.run([R1, "tokenizer", *args, "--jsonl"], input="".join(json.dumps(l) + "\n" for l in lines),
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(proc.stderr)
    # One JSON object per "\n": not splitlines(), which also splits at U+0085 and U+2028 inside strings.
    return [json.loads(l) for l in proc.stdout.split("\n") if l]


class AgainstHuggingFace(unittest.TestCase):
    def check(self, name):
        path = os.path.join(DATA, "tokenizers", name, "tokenizer.json")
        hf = Tokenizer.from_file(path)
        texts = random_strings(400, seed=len(name))
        got = r1_jsonl(["encode", "--tokenizer", path], texts)
        self.assertEqual(len(got), len(texts))
        for text, ids in zip(texts, got):
            self.assertEqual(ids, hf.encode(text, add_special_tokens=False).ids, repr(text))
        decoded = r1_jsonl(["decode", "--tokenizer", path], got)
        for ids, text in zip(got, decoded):
            self.assertEqual(text, hf.decode(ids, skip_special_tokens=False), repr(text))
        skipped = r1_jsonl(["decode", "--tokenizer", path, "--skip-special"], got)
        for ids, text in zip(got, skipped):
            self.assertEqual(text, hf.decode(ids, skip_special_tokens=True), repr(text))

    def test_deepseek_v3(self):
        self.check("deepseek_v3")

    def test_qwen3(self):
        self.check("qwen3")

    def test_saved_files_load_in_huggingface(self):
        import tempfile
        with open(os.path.join(DATA, "tokenizers", "samples.json")) as f:
            samples = json.load(f)
        for name in ["deepseek_v3", "qwen3"]:
            with self.subTest(name), tempfile.TemporaryDirectory() as tmp:
                src = os.path.join(DATA, "tokenizers", name, "tokenizer.json")
                out = os.path.join(tmp, "tokenizer.json")
                subprocess.run([R1, "tokenizer", "convert", "--tokenizer", src, "--out", out], check=True,
                               capture_output=True)
                original, saved = Tokenizer.from_file(src), Tokenizer.from_file(out)
                self.assertEqual(saved.get_vocab_size(), original.get_vocab_size())
                for text in samples + random_strings(100, seed=5):
                    self.assertEqual(saved.encode(text).ids, original.encode(text).ids, repr(text))
                # and r1 reads its own file back identically
                self.assertEqual(r1_jsonl(["encode", "--tokenizer", out], samples),
                                 r1_jsonl(["encode", "--tokenizer", src], samples))

    def test_trained_tokenizers_load_in_huggingface(self):
        import tempfile
        texts = random_strings(150, seed=9)
        for pattern in ["deepseek-llm", "deepseek-v3", "qwen2", "llama3", "gpt2"]:
            with self.subTest(pattern), tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "tokenizer.json")
                subprocess.run([R1, "tokenizer", "train", "--input", os.path.join(DATA, "gsm8k", "test.jsonl"),
                                "--field", "question", "--vocab-size", "1000", "--pattern", pattern,
                                "--special", "<|bos|>,<|eos|>", "--pad-to-multiple", "128", "--out", out],
                               check=True, capture_output=True)
                hf = Tokenizer.from_file(out)
                self.assertEqual(hf.get_vocab_size() % 128, 0)
                got = r1_jsonl(["encode", "--tokenizer", out], texts)
                for text, ids in zip(texts, got):
                    self.assertEqual(ids, hf.encode(text, add_special_tokens=False).ids, repr(text))

    def test_bad_lines_are_named(self):
        path = os.path.join(DATA, "tokenizers", "qwen3", "tokenizer.json")
        proc = subprocess.run([R1, "tokenizer", "encode", "--tokenizer", path, "--jsonl"], input='"ok"\n[1,2]\n',
                              capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("stdin:2", proc.stderr)
        proc = subprocess.run([R1, "tokenizer", "decode", "--tokenizer", path, "--jsonl"], input="[1, 99999999]\n",
                              capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("99999999", proc.stderr)


if __name__ == "__main__":
    unittest.main()
