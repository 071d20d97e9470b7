"""r1 generate's contract (text, token-id and conversation prompts, --n, order, JSON fields) and
its sampling filters checked against transformers' own logits processors on the same sequences."""
import json
import os
import subprocess
import time
import unittest

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM
from transformers.generation.logits_process import (LogitsProcessorList, MinPLogitsWarper,
                                                    RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                                                    TopKLogitsWarper, TopPLogitsWarper)

from r1test import make_question_model, R1, TempDirCase, r1


class Generate(TempDirCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.model = make_question_model(self.tmp, 300, 320, "<|eos|>,<|im_start|>,<|im_end|>", 256, 2)
        self.hf_tok = Tokenizer.from_file(os.path.join(self.model, "tokenizer.json"))

    def rows(self, *args):
        return [json.loads(l) for l in r1("generate", "--model", self.model, "--threads", 1, *args).stdout.splitlines()]

    def test_contract_text_ids_and_conversations_in_order(self):
        prompts = os.path.join(self.tmp, "prompts.jsonl")
        ids = self.hf_tok.encode("question 3: what").ids
        with open(prompts, "w") as f:
            f.write(json.dumps({"prompt": "question 12: what is"}) + "\n")
            f.write(json.dumps({"prompt_ids": ids}) + "\n")
            f.write(json.dumps({"messages": [{"role": "user", "content": "what is 2 plus 2?"}]}) + "\n")
        out = os.path.join(self.tmp, "out.jsonl")
        r1("generate", "--model", self.model, "--prompts", prompts, "--max-new-tokens", 10, "--temperature", 0,
           "--n", 2, "--chat-template", "chatml", "--out", out, "--threads", 1)
        with open(out) as f:
            rows = [json.loads(l) for l in f]
        self.assertEqual([(r["index"], r["sample"]) for r in rows], [(i, s) for i in range(3) for s in range(2)])
        for r in rows:
            self.assertEqual(set(r) >= {"text", "ids", "logprobs", "finish_reason"}, True)
            self.assertEqual(len(r["ids"]), len(r["logprobs"]))
            self.assertEqual(r["text"], self.hf_tok.decode(r["ids"], skip_special_tokens=True))
            self.assertIn(r["finish_reason"], ("stop", "length"))
        self.assertEqual(rows[0]["ids"], rows[1]["ids"])  # greedy: both samples agree
        self.assertEqual(rows[0]["prompt_tokens"], len(self.hf_tok.encode("question 12: what is").ids))
        self.assertEqual(rows[2]["prompt_tokens"], len(ids))
        chat = self.hf_tok.encode("<|im_start|>user\nwhat is 2 plus 2?<|im_end|>\n<|im_start|>assistant\n").ids
        self.assertEqual(rows[4]["prompt_tokens"], len(chat))
        # The same text prompt from the flag gives the same output.
        flag = self.rows("--prompt", "question 12: what is", "--max-new-tokens", 10, "--temperature", 0)
        self.assertEqual(flag[0]["ids"], rows[0]["ids"])

    def test_sampled_logprobs_match_transformers_processors(self):
        prompt = self.hf_tok.encode("question 5: what is").ids
        flags = dict(temperature=0.7, top_k=20, top_p=0.9, min_p=0.05, repetition_penalty=1.3)
        rows = self.rows("--prompt-ids", ",".join(map(str, prompt)), "--max-new-tokens", 16, "--n", 4, "--seed", 3,
                         "--ignore-eos", *[x for k, v in flags.items() for x in ("--" + k.replace("_", "-"), v)])
        processors = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(1.3), TemperatureLogitsWarper(0.7),
                                          TopKLogitsWarper(20), TopPLogitsWarper(0.9), MinPLogitsWarper(0.05)])
        hf = AutoModelForCausalLM.from_pretrained(self.model, local_files_only=True, dtype=torch.float32)
        self.assertEqual(len({tuple(r["ids"]) for r in rows}), 4, "4 different samples")
        for r in rows:
            seq = torch.tensor([prompt + r["ids"]])
            with torch.no_grad():
                logits = hf(seq).logits[0].float()
            for t, (token, lp) in enumerate(zip(r["ids"], r["logprobs"])):
                pos = len(prompt) + t - 1
                scores = processors(seq[:, :pos + 1], logits[pos:pos + 1].clone())
                want = torch.log_softmax(scores, -1)[0, token].item()
                self.assertGreater(want, -1e9, "r1 sampled a token transformers' filters remove")
                self.assertAlmostEqual(lp, want, delta=2e-4)
        # The 4 samples decode through the packed weights (2-256 rows); without them, the same draws.
        plain = self.rows("--prompt-ids", ",".join(map(str, prompt)), "--max-new-tokens", 16, "--n", 4, "--seed", 3,
                          "--ignore-eos", "--no-packed-weights",
                          *[x for k, v in flags.items() for x in ("--" + k.replace("_", "-"), v)])
        self.assertEqual([r["ids"] for r in plain], [r["ids"] for r in rows])
        for a, b in zip(plain, rows):
            for x, y in zip(a["logprobs"], b["logprobs"]):
                self.assertAlmostEqual(x, y, delta=1e-4)

    def test_chat_cli_streams_keeps_history_and_ctrl_c_stops_an_answer(self):
        import pty
        import select
        import signal
        pid, fd = pty.fork()
        if pid == 0:  # the child: r1 chat on a terminal
            os.execv(R1, [R1, "chat", "--model", self.model, "--chat-template", "chatml", "--threads", "1",
                          "--max-new-tokens", "100000", "--ignore-eos", "--max-context", "4096"])
        output = b""

        def read_until(needle, timeout=60):
            nonlocal output
            deadline = time.time() + timeout
            while needle not in output and time.time() < deadline:
                ready, _, _ = select.select([fd], [], [], 0.2)
                if ready:
                    try:
                        output += os.read(fd, 4096)
                    except OSError:
                        break
            self.assertIn(needle, output)

        try:
            read_until(b"> ")
            os.write(fd, b"/temp 0\n")
            read_until(b"(temperature 0)")
            before = len(output)
            os.write(fd, b"what is 1 plus 1?\n")
            # An endless answer is streaming once bytes beyond the echoed question arrive (not a
            # fixed sleep: a fast machine reaches --max-context within a second).
            deadline = time.time() + 60
            while len(output) < before + len(b"what is 1 plus 1?\r\n") + 40 and time.time() < deadline:
                if select.select([fd], [], [], 0.05)[0]:
                    output += os.read(fd, 4096)
            os.write(fd, b"\x03")  # Ctrl-C: stop the answer, stay in the chat
            read_until(b"[stopped]")
            read_until(b"> ")
            os.write(fd, b"/reset\n")
            read_until(b"(conversation cleared)")
            os.write(fd, b"/quit\n")
            _, status = os.waitpid(pid, 0)
            self.assertEqual(os.waitstatus_to_exitcode(status), 0, output.decode(errors="replace"))
        finally:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.close(fd)

    def test_chat_cli_on_a_pipe(self):
        proc = subprocess.run([R1, "chat", "--model", self.model, "--chat-template", "chatml", "--threads", "1",
                               "--max-new-tokens", "8", "--temperature", "0"],
                              input="question 2: what\n/system be brief\nquestion 3\n", capture_output=True,
                              text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        # The first answer is what r1 generate gives for the same chat prompt.
        rows = self.rows("--prompt", "question 2: what", "--chat", "--chat-template", "chatml", "--max-new-tokens", 8,
                         "--temperature", 0)
        self.assertTrue(proc.stdout.startswith(rows[0]["text"]), (proc.stdout, rows[0]["text"]))
        self.assertIn("(system prompt set; conversation cleared)", proc.stdout)

    def test_bad_prompt_lines_and_flags(self):
        bad = os.path.join(self.tmp, "bad.jsonl")
        with open(bad, "w") as f:
            f.write('{"prompt": "ok"}\n{"text": "no prompt field"}\n')
        proc = r1("generate", "--model", self.model, "--prompts", bad, check=False)
        self.assertIn("bad.jsonl:2", proc.stderr)
        proc = r1("generate", "--model", self.model, "--prompt", "x", "--top-p", "0", check=False)
        self.assertIn("top_p", proc.stderr)
        proc = r1("generate", "--model", self.model, "--prompt", "x", "--logit-bias", "5=1", check=False)
        self.assertIn("--logit-bias", proc.stderr)


if __name__ == "__main__":
    unittest.main()
