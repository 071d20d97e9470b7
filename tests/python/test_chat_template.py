"""Chat templates against Jinja rendered by transformers' apply_chat_template: the real
DeepSeek-V3 template from its tokenizer_config.json, the DeepSeek LLM template quoted in
reference/deepseek-architecture.md 1.4, and standard ChatML; ids against HF tokenization of the
same text; masks against the assistant contents."""
import json
import os
import subprocess
import unittest

from transformers import AutoTokenizer

from r1test import R1

DATA = os.environ["R1_TEST_DATA"]
DEEPSEEK_LLM_JINJA = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{{ bos_token }}"
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
CHATML_JINJA = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a prime.\n\nOnly one."},
     {"role": "assistant", "content": "7"}, {"role": "user", "content": "Another, 你好?"},
     {"role": "assistant", "content": "  11, with spaces\n"}],
    [{"role": "user", "content": "Natalia sold clips to 48 of her friends in April. #### 72"},
     {"role": "assistant", "content": "Let me think.\n\\boxed{72}"}],
]


def r1_chat(tokenizer_json, template, conversations, generation_prompt):
    args = [R1, "tokenizer", "chat", "--tokenizer", tokenizer_json]
    if template:
        args += ["--chat-template", template]
    if generation_prompt:
        args.append("--generation-prompt")
    proc = subprocess.run(args, input="".join(json.dumps({"messages": c}) + "\n" for c in conversations),
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return [json.loads(l) for l in proc.stdout.splitlines()]


class ChatTemplates(unittest.TestCase):
    def check(self, folder, template, jinja):
        path = os.path.join(DATA, "tokenizers", folder)
        hf = AutoTokenizer.from_pretrained(path, local_files_only=True)
        for generation_prompt in (False, True):
            convs = [c for c in CONVERSATIONS if not generation_prompt or c[-1]["role"] == "user"]
            got = r1_chat(os.path.join(path, "tokenizer.json"), template, convs, generation_prompt)
            for conv, row in zip(convs, got):
                want = hf.apply_chat_template(conv, chat_template=jinja, tokenize=False,
                                              add_generation_prompt=generation_prompt)
                self.assertEqual(row["text"], want, conv)
                self.assertEqual(row["ids"], hf(want, add_special_tokens=False)["input_ids"], conv)
                masked = hf.decode([i for i, m in zip(row["ids"], row["assistant_mask"]) if m])
                for m in conv:  # the mask covers every answer and no question
                    if m["role"] == "assistant":
                        self.assertIn(m["content"].strip(), masked)
                    else:
                        self.assertNotIn(m["content"], masked)
                if not any(m["role"] == "assistant" for m in conv):
                    self.assertEqual(masked, "")

    def test_deepseek_v3_matches_its_real_template(self):
        self.check("deepseek_v3", None, None)  # recognised from tokenizer_config.json, rendered by its Jinja

    def test_deepseek_llm(self):
        self.check("deepseek_v3", "deepseek-llm", DEEPSEEK_LLM_JINJA)

    def test_chatml(self):
        self.check("qwen3", "chatml", CHATML_JINJA)


if __name__ == "__main__":
    unittest.main()
