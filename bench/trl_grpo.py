"""The TRL side of bench/run_grpo.py: GRPOTrainer (PyPI trl) on CPU (R1_TRL_DEVICE=cuda: on the GPU, for
scripts/gpu-check.sh) with the same model directory,
prompts, group size, completion length, learning rate and reward as the r1 run; seconds per step.
PRECISION "defaults" keeps TRL's own defaults (bf16 autocast, gradient checkpointing); "fp32" turns both
off, as r1 runs. JSON on stdout. Usage: trl_grpo.py MODEL_DIR TRAIN_JSONL STEPS P G MAX_TOKENS THREADS [PRECISION]"""
import json
import os
import re
import resource
import sys
import tempfile
import time
import warnings

import torch


def main():
    model_dir, prompts_file, steps, P, G, max_tokens, threads = sys.argv[1:8]
    steps, P, G, max_tokens = int(steps), int(P), int(G), int(max_tokens)
    precision = sys.argv[8] if len(sys.argv) > 8 else "defaults"
    matched = {} if precision == "defaults" else {"bf16": False, "gradient_checkpointing": False}
    torch.set_num_threads(int(threads))
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    with open(prompts_file) as f:
        rows = [json.loads(line) for line in f]
    dataset = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in rows])
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{model_dir}/tokenizer.json", eos_token="<|eos|>",
                                  pad_token="<|eos|>")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)

    def accuracy(prompts, completions, answer, **kwargs):  # r1's accuracy_math on these answers
        out = []
        for text, want in zip(completions, answer):
            m = re.findall(r"<answer>(.*?)</answer>", text)
            out.append(1.0 if m and m[-1].strip() == want else 0.0)
        return out

    times = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter() - self.t)

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = GRPOConfig(output_dir=tmp, num_generations=G, per_device_train_batch_size=P * G,
                          gradient_accumulation_steps=1, steps_per_generation=1, max_completion_length=max_tokens,
                          max_steps=steps, learning_rate=1e-4, lr_scheduler_type="constant", beta=0.0,
                          loss_type="grpo", temperature=1.0, use_cpu=os.environ.get("R1_TRL_DEVICE", "cpu") == "cpu", report_to=[], save_strategy="no",
                          logging_steps=1, disable_tqdm=True, seed=1, **matched)
        trainer = GRPOTrainer(model=model, reward_funcs=accuracy, args=args, train_dataset=dataset,
                              processing_class=tok, callbacks=[StepTimer()])
        trainer.train()
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    steady = times[1:] if len(times) > 1 else times
    print(json.dumps({"step_s": sum(steady) / len(steady), "steps": len(times), "bf16": args.bf16,
                      "gradient_checkpointing": args.gradient_checkpointing,
                      "completion_length": sum(lengths) / max(1, len(lengths)),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
