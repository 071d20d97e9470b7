"""make bench (engine part): decode tokens/s at batch 1, 8, 32, 64 and prefill tokens/s for the
tiny, small and bench-m (110M) presets, r1's engine beside transformers' batched generate on the
same weights (one model directory, loaded by both) and the same shapes, with peak memory.
Then the same in bf16 (weights and KV cache; transformers with dtype=bfloat16) for small and bench-m:
on a CPU with AMX the matrix products run several times faster than in fp32.
Usage: run_engine.py BUILD_DIR [--quick]"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    print(f"Machine: {describe()}")
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    quick = "--quick" in sys.argv
    presets = ["tiny", "small"] if quick else ["tiny", "small", "bench-m"]
    batches = [1, 8, 32, 64]
    common = ["--prompt", "16", "--new-tokens", "64" if quick else "128", "--prefill-prompt", "256", "--threads", "2"]
    print("\n## Generation engine: greedy decode (prompt 16, then 128 new tokens), prefill (256-token prompts), 2 threads\n")
    print("| preset | dtype | batch | r1 decode tok/s | transformers tok/s | r1 / transformers | r1 batch B / batch 1 "
          "| r1 prefill tok/s | transformers prefill tok/s | r1 peak RSS MB | transformers peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    runs = [(p, "float32") for p in presets] + ([] if quick else [("small", "bfloat16"), ("bench-m", "bfloat16")])
    with tempfile.TemporaryDirectory() as tmp:
        for preset, dtype in runs:
            model = os.path.join(tmp, preset)
            if not os.path.exists(model):
                subprocess.run([os.path.join(build, "r1"), "model", "init", "--preset", preset, "--out", model],
                               check=True, capture_output=True)
            base = None
            for batch in batches:
                a = run([os.path.join(build, "bench", "r1_bench"), "--threads", "2", "decode", "--model", model,
                         "--batch", str(batch), "--dtype", dtype] + [c for c in common if c != "--threads" and c != "2"])
                b = run([sys.executable, os.path.join(HERE, "hf_bench.py"), "decode", "--model", model, "--batch",
                         str(batch), "--dtype", dtype] + common)
                base = base or a["tokens_per_s"]
                print(f"| {preset} | {dtype} | {batch} | {a['tokens_per_s']:.0f} | {b['tokens_per_s']:.0f} | "
                      f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}x | {a['tokens_per_s'] / base:.1f}x | "
                      f"{a['prefill_tokens_per_s']:.0f} | {b['prefill_tokens_per_s']:.0f} | {a['peak_rss_mb']:.0f} | "
                      f"{b['peak_rss_mb']:.0f} |", flush=True)

if __name__ == "__main__":
    main()
