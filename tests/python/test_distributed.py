"""Data-parallel training over c10d/Gloo on localhost: 2 processes with batch B end with the same
weights as 1 process with batch 2B (same data order), through `r1 launch` and through a
torchrun-style environment; a rank that dies or stalls stops the job with a clear error instead
of a hang."""
import json
import os
import random
import signal
import socket
import subprocess
import time
import unittest

from safetensors.numpy import load_file

from r1test import R1, TempDirCase, r1, read_json, read_jsonl

COMMON = ["--preset", "tiny", "--seq-len", "32", "--lr", "3e-3", "--warmup-steps", "2", "--seed", "7",
          "--threads", "1"]




def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DataParallel(TempDirCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        corpus = os.path.join(self.tmp, "corpus.txt")
        rng = random.Random(1)
        with open(corpus, "w") as f:
            for _ in range(300):
                f.write(" ".join(rng.choice(["red", "green", "blue", "one", "two", "three"]) for _ in range(12)) + ".\n")
        self.tok = os.path.join(self.tmp, "tokenizer.json")
        r1("tokenizer", "train", "--input", corpus, "--vocab-size", "300", "--special",
           "<|eos|>,<|im_start|>,<|im_end|>", "--out", self.tok)
        self.data = os.path.join(self.tmp, "data")
        r1("data", "prepare", "--tokenizer", self.tok, "--input", corpus, "--eos", "<|eos|>", "--out", self.data)

    def pretrain_args(self, out, steps, micro_batch, *extra):
        return ["pretrain", *COMMON, "--tokenizer", self.tok, "--data", self.data, "--out", out, "--steps", str(steps),
                "--batch-tokens", "256", "--micro-batch", str(micro_batch), *extra]

    def assert_same_weights(self, a_dir, b_dir, tolerance):
        a = load_file(os.path.join(a_dir, "model.safetensors"))
        b = load_file(os.path.join(b_dir, "model.safetensors"))
        self.assertEqual(a.keys(), b.keys())
        worst = max(float(abs(a[k] - b[k]).max()) for k in a)
        self.assertLess(worst, tolerance)
        return worst

    def test_two_processes_equal_one_with_twice_the_batch(self):
        one = os.path.join(self.tmp, "one")
        r1(*self.pretrain_args(one, 6, 8))
        two = os.path.join(self.tmp, "two")
        proc = r1("launch", "--nproc", "2", "--", *self.pretrain_args(two, 6, 4))
        self.assert_same_weights(one, two, 1e-5)
        m1 = read_jsonl(os.path.join(one, "metrics.jsonl"))
        m2 = read_jsonl(os.path.join(two, "metrics.jsonl"))
        self.assertEqual([r["step"] for r in m2], list(range(1, 7)))  # rank 0 alone writes
        for x, y in zip(m1, m2):
            self.assertAlmostEqual(x["loss"], y["loss"], places=4)
        self.assertLess(m1[-1]["loss"], m1[0]["loss"] - 1)  # it trained
        self.assertEqual(read_json(os.path.join(one, "trainer_state", "state.json"))["data"],
                         read_json(os.path.join(two, "trainer_state", "state.json"))["data"])
        self.assertEqual(proc.stdout.count("final loss"), 1)  # one report, from rank 0

    def test_zero1_shards_the_optimizer_and_takes_the_same_steps(self):
        """--zero 1 on 2 and 4 ranks: each rank keeps AdamW's moments of its own share of the
        parameters, and the weights equal plain data parallelism's bit for bit; the checkpoint holds
        one optimizer file per rank, a run resumed on as many ranks ends where an uninterrupted one
        does, and resuming on another number of ranks is a clear error."""
        for ranks in (2, 4):
            plain, sharded = os.path.join(self.tmp, f"dp{ranks}"), os.path.join(self.tmp, f"zero1-{ranks}")
            r1("launch", "--nproc", ranks, "--", *self.pretrain_args(plain, 4, 8 // ranks))
            r1("launch", "--nproc", ranks, "--", *self.pretrain_args(sharded, 4, 8 // ranks, "--zero", "1"))
            self.assertEqual(self.assert_same_weights(plain, sharded, 1e-12), 0.0)
            state = sorted(f for f in os.listdir(os.path.join(sharded, "trainer_state")) if f.startswith("optimizer"))
            self.assertEqual(state, [f"optimizer-rank-{r}-of-{ranks}.pt" for r in range(ranks)])
            sizes = [os.path.getsize(os.path.join(sharded, "trainer_state", f)) for f in state]
            whole = os.path.getsize(os.path.join(plain, "trainer_state", "optimizer.pt"))
            self.assertLess(max(sizes), 0.75 * whole)  # each rank holds a share
        resumed = os.path.join(self.tmp, "resumed")
        r1("launch", "--nproc", "2", "--", *self.pretrain_args(resumed, 2, 4, "--zero", "1"))
        r1("launch", "--nproc", "2", "--", *self.pretrain_args(resumed, 4, 4, "--zero", "1", "--resume"))
        self.assertEqual(self.assert_same_weights(os.path.join(self.tmp, "zero1-2"), resumed, 1e-12), 0.0)
        proc = r1(*self.pretrain_args(resumed, 6, 8, "--zero", "1", "--resume"), check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("optimizer-rank-0-of-1.pt", proc.stderr)
        self.assertIn("number of processes", proc.stderr)

    def test_zero2_and_zero3_take_the_steps_of_plain_data_parallelism(self):
        """--zero 2 (each gradient summed onto the rank that updates it, bucket by bucket during the
        backward pass) and --zero 3 (the layers' matrices on their owner only, gathered before each
        layer's forward and backward; 2 at 2 ranks, 3 at 2 and 4) with 2 micro-batches per rank: the weights
        of plain data parallelism within 1e-6 (the micro-batches are summed over ranks first, so
        the rounding differs), the same with activation checkpointing and on a mixture-of-experts
        model; checkpoints are whole Hugging Face models, resume is bit-identical, and another
        number of ranks is a clear error."""
        for ranks in (2, 4):
            micro = 4 // ranks
            runs = {}
            for zero in ("0", "2", "3") if ranks == 2 else ("0", "3"):
                runs[zero] = os.path.join(self.tmp, f"zero{zero}-{ranks}")
                r1("launch", "--nproc", ranks, "--", *self.pretrain_args(runs[zero], 4, micro, "--zero", zero))
            self.assertLess(self.assert_same_weights(runs["0"], runs["3"], 1e-6), 1e-6)
            if ranks == 2:  # ZeRO-3 reduces gradients as ZeRO-2 does: the same sums
                self.assertEqual(self.assert_same_weights(runs["2"], runs["3"], 1e-12), 0.0)
            state = sorted(f for f in os.listdir(os.path.join(runs["3"], "trainer_state")) if f.startswith("optimizer"))
            self.assertEqual(state, [f"optimizer-rank-{r}-of-{ranks}.pt" for r in range(ranks)])
        checkpointed = os.path.join(self.tmp, "zero3-checkpointed")
        r1("launch", "--nproc", "2", "--", *self.pretrain_args(checkpointed, 4, 2, "--zero", "3",
                                                               "--checkpoint-activations"))
        self.assertEqual(self.assert_same_weights(os.path.join(self.tmp, "zero3-2"), checkpointed, 1e-12), 0.0)
        resumed = os.path.join(self.tmp, "zero3-resumed")
        r1("launch", "--nproc", "2", "--", *self.pretrain_args(resumed, 2, 2, "--zero", "3"))
        r1("launch", "--nproc", "2", "--", *self.pretrain_args(resumed, 4, 2, "--zero", "3", "--resume"))
        self.assertEqual(self.assert_same_weights(os.path.join(self.tmp, "zero3-2"), resumed, 1e-12), 0.0)
        proc = r1("launch", "--nproc", "4", "--", *self.pretrain_args(resumed, 6, 1, "--zero", "3", "--resume"),
                  check=False)
        self.assertNotEqual(proc.returncode, 0)
        # Every rank names the shard it lacks; whichever exits first may cut the others' connection
        # short (rank 0 then reports the lost peer), so any rank's message will do.
        self.assertRegex(proc.stderr + proc.stdout, r"no optimizer-rank-\d-of-4\.pt \(the checkpoint holds "
                         r"optimizer-rank-0-of-2\.pt optimizer-rank-1-of-2\.pt\)")
        moe = lambda out, zero: [a if a != "tiny" else "tiny-v3" for a in self.pretrain_args(out, 3, 2, "--zero", zero)]
        plain, sharded = os.path.join(self.tmp, "moe-dp"), os.path.join(self.tmp, "moe-zero3")
        r1("launch", "--nproc", "2", "--", *moe(plain, "0"))
        r1("launch", "--nproc", "2", "--", *moe(sharded, "3"))
        self.assertLess(self.assert_same_weights(plain, sharded, 1e-6), 1e-6)

    def test_one_process_in_a_process_group(self):
        """R1_PROCESS_GROUP=1 makes a single process join a process group (the one-GPU NCCL run of
        scripts/gpu-check.sh): the collectives run and the weights are those of a plain run."""
        plain, grouped = os.path.join(self.tmp, "plain"), os.path.join(self.tmp, "grouped")
        r1(*self.pretrain_args(plain, 3, 8))
        env = dict(os.environ, R1_PROCESS_GROUP="1")
        subprocess.run([R1, "launch", "--nproc", "1", "--", *self.pretrain_args(grouped, 3, 8, "--zero", "1")],
                       check=True, capture_output=True, env=env)
        self.assertEqual(self.assert_same_weights(plain, grouped, 1e-12), 0.0)
        self.assertTrue(os.path.exists(os.path.join(grouped, "trainer_state", "optimizer-rank-0-of-1.pt")))

    def test_a_mixture_of_experts_model_two_processes_equal_one(self):
        """tiny-v3 (latent attention, 8 routed experts, an MTP module trained with --mtp-weight): the
        expert loads are summed over ranks before the routing biases move, so two processes end with
        the weights and biases of one."""
        args = lambda out, micro: [a if a != "tiny" else "tiny-v3" for a in self.pretrain_args(out, 6, micro)] + [
            "--mtp-weight", "0.3"]
        one, two = os.path.join(self.tmp, "one"), os.path.join(self.tmp, "two")
        r1(*args(one, 8))
        r1("launch", "--nproc", "2", "--", *args(two, 4))
        self.assert_same_weights(one, two, 1e-5)
        bias = load_file(os.path.join(two, "model.safetensors"))["model.layers.1.mlp.gate.e_score_correction_bias"]
        self.assertGreater(float(abs(bias).max()), 0.0015)  # the biases did move
        m1, m2 = read_jsonl(os.path.join(one, "metrics.jsonl")), read_jsonl(os.path.join(two, "metrics.jsonl"))
        for x, y in zip(m1, m2):
            self.assertAlmostEqual(x["mtp_loss"], y["mtp_loss"], places=4)
            self.assertEqual(x["moe_layer_load_max_over_mean"], y["moe_layer_load_max_over_mean"])

    def test_sft_through_a_torchrun_style_environment(self):
        # SFT rows carry different numbers of assistant tokens: the loss must be the mean over the
        # global batch's targets for 2 ranks to equal 1 process.
        chats = os.path.join(self.tmp, "chats.jsonl")
        rng = random.Random(2)
        with open(chats, "w") as f:
            for _ in range(64):
                answer = " ".join(rng.choice(["red", "blue", "two"]) for _ in range(rng.randint(1, 9)))
                f.write(json.dumps({"messages": [{"role": "user", "content": "say " + answer},
                                                 {"role": "assistant", "content": answer}]}) + "\n")
        sft = ["sft", *COMMON, "--tokenizer", self.tok, "--data", chats, "--chat-template", "chatml", "--steps", "4",
               "--batch-tokens", "256"]
        one = os.path.join(self.tmp, "sft_one")
        r1(*sft, "--micro-batch", "8", "--out", one)
        two = os.path.join(self.tmp, "sft_two")
        port = str(free_port())
        procs = [subprocess.Popen([R1, *sft, "--micro-batch", "4", "--out", two],
                                  env={**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
                                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
        for p in procs:
            _, err = p.communicate(timeout=300)
            self.assertEqual(p.returncode, 0, err)
        self.assert_same_weights(one, two, 1e-5)

    def start_long_job(self, out, *extra):
        proc = subprocess.Popen([R1, "launch", "--nproc", "2", "--grace", "5", "--",
                                 *self.pretrain_args(out, 100000, 4, *extra)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        # Wait until rank 0 has logged steps (both ranks are then inside the training loop).
        metrics = os.path.join(out, "metrics.jsonl")
        deadline = time.time() + 120
        while time.time() < deadline and not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
            time.sleep(0.05)
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            children = f.read().split()
        self.assertEqual(len(children), 2)
        return proc, [int(c) for c in children]

    def finish(self, proc, within):
        start = time.time()
        try:
            _, err = proc.communicate(timeout=within)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            self.fail(f"the job did not stop within {within} s")
        return proc.returncode, err, time.time() - start

    def test_a_dead_rank_stops_the_job(self):
        proc, ranks = self.start_long_job(os.path.join(self.tmp, "dead"))
        os.kill(ranks[1], signal.SIGKILL)
        code, err, _ = self.finish(proc, 60)
        self.assertNotEqual(code, 0)
        self.assertIn("rank 1) was killed by signal", err)
        self.assertIn("rank 0: gradient all-reduce failed", err)

    def test_a_stalled_rank_times_out(self):
        proc, ranks = self.start_long_job(os.path.join(self.tmp, "stalled"), "--dist-timeout", "3")
        os.kill(ranks[1], signal.SIGSTOP)
        code, err, seconds = self.finish(proc, 60)
        self.assertNotEqual(code, 0)
        self.assertIn("did not answer within 3 s", err)
        for pid in ranks:  # the stalled rank was killed after the grace period, not left behind
            self.assertFalse(os.path.exists(f"/proc/{pid}"), f"rank process {pid} is still there")

    def test_batch_must_split_across_ranks(self):
        proc = r1("launch", "--nproc", "2", "--", *self.pretrain_args(os.path.join(self.tmp, "bad"), 2, 8),
                  check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("x world size", proc.stderr)
        proc = r1("launch", "--nproc", "2", check=False)
        self.assertIn("give the command after --", proc.stderr)


if __name__ == "__main__":
    unittest.main()
