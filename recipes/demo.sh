#!/usr/bin/env bash
# make demo, until the R1-Zero recipe lands: the most complete pipeline that exists today.
# Creates a tiny Llama-architecture model, saves it as a Hugging Face model directory, reloads
# it and decodes greedily with the KV cache (random weights, so the tokens mean nothing yet).
set -euo pipefail
R1=${R1:-build/r1}
RUN=${RUN:-runs/demo}

echo "== the architectures r1 knows (exact parameter counts)"
"$R1" model info --list
echo
echo "== DeepSeek LLM 7B, as published"
"$R1" model info --preset deepseek-llm-7b
echo
echo "== a random 'tiny' model, written as an HF directory (config.json + model.safetensors)"
"$R1" model init --preset tiny --out "$RUN/tiny-init" --seed 0
ls -l "$RUN/tiny-init"
echo
echo "== reloaded from disk, greedy decoding of two prompts of different lengths in one batch"
"$R1" generate --model "$RUN/tiny-init" --prompt-ids 0,11,12,13,14 --prompt-ids 0,7 --max-new-tokens 12
echo
echo "demo done: $RUN/tiny-init loads in transformers with AutoModelForCausalLM.from_pretrained"
