"""Helpers shared by the integration tests: run the r1 binary, make temporary directories."""
import json
import os
import subprocess
import tempfile

R1 = os.environ.get("R1_BIN", "")
# The project's built-in data (data/, tokenizers unpacked) in the build tree; ctest sets it.
DATA = os.environ.get("R1_TEST_DATA", "")


def r1(*args, check=True):
    """Runs r1 and returns the CompletedProcess; with check, a failure shows r1's stderr."""
    if not R1 or not os.path.exists(R1):
        raise RuntimeError("R1_BIN must point at the built r1 binary (ctest sets it)")
    proc = subprocess.run([R1, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"r1 {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


class TempDirCase:
    """Mixin: self.tmp is a fresh directory per test."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="r1test_")
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()


def make_question_model(tmp, documents, vocab_size, specials, max_position, seed, deepseek=False):
    """A random 2-layer Llama directory (deepseek: DeepSeek-V3 with latent attention, experts and an
    MTP module) with a byte-level BPE tokenizer trained (by r1) on short arithmetic questions; EOS
    is <|eos|>. Returns the model directory (tokenizer.json inside)."""
    from tokenizers import Tokenizer
    from transformers import DeepseekV3Config, LlamaConfig
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w") as f:
        for i in range(documents):
            f.write(f"question {i}: what is {i % 7} plus {i % 5}? answer: {i % 7 + i % 5}.\n")
    tok = os.path.join(tmp, "tokenizer.json")
    r1("tokenizer", "train", "--input", corpus, "--vocab-size", str(vocab_size), "--special", specials, "--out", tok)
    hf_tok = Tokenizer.from_file(tok)
    cfg = os.path.join(tmp, "config.json")
    common = dict(vocab_size=hf_tok.get_vocab_size(), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_position,
                  initializer_range=0.3, eos_token_id=hf_tok.token_to_id("<|eos|>"))
    if deepseek:
        config = DeepseekV3Config(**common, q_lora_rank=24, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8,
                                  v_head_dim=12, n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2,
                                  moe_intermediate_size=32, first_k_dense_replace=1, n_group=4, topk_group=2,
                                  num_nextn_predict_layers=1, architectures=["DeepseekV3ForCausalLM"])
    else:
        config = LlamaConfig(**common, architectures=["LlamaForCausalLM"])
    write_json(cfg, config.to_dict())
    model = os.path.join(tmp, "model")
    r1("model", "init", "--config-json", cfg, "--out", model, "--seed", seed)
    os.replace(tok, os.path.join(model, "tokenizer.json"))
    return model


def tiny_policy(tmp, preset="tiny"):
    """A random `tiny` preset model (or another preset) with a small tokenizer, and 16 prompts: the
    policy of the GRPO tests. Returns (model directory, prompts JSONL)."""
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w") as f:
        for i in range(200):
            f.write(f"a b c d e f g aa bb cc abc the cat sat on a mat {i}\n")
    tok = os.path.join(tmp, "tok.json")
    r1("tokenizer", "train", "--input", corpus, "--vocab-size", "300", "--special", "<|eos|>", "--out", tok)
    base = os.path.join(tmp, "base")
    r1("model", "init", "--preset", preset, "--out", base, "--seed", 1)
    os.replace(tok, os.path.join(base, "tokenizer.json"))
    prompts = os.path.join(tmp, "prompts.jsonl")
    with open(prompts, "w") as f:
        for i in range(16):
            f.write(json.dumps({"prompt": f"item {i}:"}) + "\n")
    return base, prompts


def assert_greedy_matches_transformers(test, model_dir, hf, prompts, eos, new_tokens=12, what="", flags=()):
    """`r1 generate` greedy (with `flags`) on token-id prompts of unequal lengths (one batch) against
    transformers' `generate` with model `hf`, prompt by prompt: the same ids, log-probs within 1e-4,
    the same finish reason."""
    import torch
    args = ["generate", "--model", model_dir, "--max-new-tokens", new_tokens, "--temperature", 0, "--threads", 1,
            *flags]
    for p in prompts:
        args += ["--prompt-ids", ",".join(map(str, p))]
    rows = [json.loads(l) for l in r1(*args).stdout.splitlines()]
    test.assertEqual(len(rows), len(prompts))
    for p, row in zip(prompts, rows):
        with torch.no_grad():
            out = hf.generate(torch.tensor([p]), max_new_tokens=new_tokens, do_sample=False, output_scores=True,
                              return_dict_in_generate=True, eos_token_id=eos, pad_token_id=0)
        want = out.sequences[0, len(p):].tolist()
        test.assertEqual(row["ids"], want, f"{what} prompt {p}")
        want_lp = [torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(out.scores, want)]
        for a, b in zip(row["logprobs"], want_lp):
            test.assertAlmostEqual(a, b, delta=1e-4)
        test.assertEqual(row["finish_reason"], "stop" if want[-1] == eos else "length")


def assert_same_update(test, a, b, start, what=""):
    """Two runs that should take the same update (one process vs data parallel) end with weights a and
    b from `start` (dicts of numpy arrays). They differ by float noise in the order of sums, which
    Adam amplifies where a gradient entry nearly cancels, so each tensor's difference is compared
    with 0.2% of its update's norm (~1e-4 relative in practice; a wrong update differs at order 1)."""
    import numpy as np
    for k in a:
        update = float(np.linalg.norm((a[k] - start[k]).ravel()))
        test.assertLess(float(np.linalg.norm((a[k] - b[k]).ravel())), 2e-3 * update + 1e-7, f"{what} {k}")


def kill_at_checkpoint(args, out, step):
    """Starts the training run `args` (which saves every step into `out`), kills it with SIGKILL once
    its checkpoint reaches `step`, and returns the step its last checkpoint holds."""
    import signal
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = os.path.join(out, "trainer_state", "state.json")
    wait_for_checkpoint(state, step)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open(state) as f:
        return json.load(f)["step"]


def wait_for_checkpoint(state_path, step, timeout=120):
    """Waits until a run's trainer_state/state.json reports at least `step` (a run to kill mid-way)."""
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(state_path) as f:
                if json.load(f)["step"] >= step:
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
