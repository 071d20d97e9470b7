#!/usr/bin/env bash
# make demo, until the R1-Zero recipe lands: the most complete pipeline that exists today.
# Trains a byte-level BPE tokenizer on the project's own documentation, creates a tiny
# Llama-architecture model beside it as a Hugging Face model directory, reloads it and decodes
# greedily with the KV cache (random weights, so the continuation means nothing yet).
set -euo pipefail
R1=${R1:-build/r1}
RUN=${RUN:-runs/demo}
MODEL="$RUN/tiny"
mkdir -p "$RUN"

echo "== the architectures r1 knows (exact parameter counts)"
"$R1" model info --list
echo
echo "== a random 'tiny' model, written as an HF directory (config.json + model.safetensors)"
"$R1" model init --preset tiny --out "$MODEL" --seed 0
echo
echo "== a tokenizer for it: byte-level BPE trained on the project's docs, DeepSeek-V3 pre-tokenization,"
echo "   padded to the model's 4096-token vocabulary"
"$R1" tokenizer train --input README.md docs/*.md --vocab-size 4096 --pad-to-multiple 4096 \
  --pattern deepseek-v3 --special '<｜begin▁of▁sentence｜>,<｜end▁of▁sentence｜>,<｜User｜>,<｜Assistant｜>' \
  --out "$MODEL/tokenizer.json"
"$R1" tokenizer info --tokenizer "$MODEL/tokenizer.json" | head -3
echo
echo "== a question in the DeepSeek-R1 chat template, as token ids"
echo '{"messages": [{"role": "user", "content": "What does the KV cache hold?"}]}' |
  "$R1" tokenizer chat --tokenizer "$MODEL/tokenizer.json" --chat-template deepseek-r1 --generation-prompt |
  tee "$RUN/prompt.json"
ids_of() { sed -E 's/.*"ids":\[([^]]*)\].*/\1/' "$1" | head -n 1; }  # the "ids" list of a JSON line
ids=$(ids_of "$RUN/prompt.json")
echo
echo "== reloaded from disk, greedy decoding with the KV cache"
"$R1" generate --model "$MODEL" --prompt-ids "$ids" --max-new-tokens 12 | tee "$RUN/generation.jsonl"
out=$(ids_of "$RUN/generation.jsonl")
echo -n "decoded: "
"$R1" tokenizer decode --tokenizer "$MODEL/tokenizer.json" --ids "$out"
echo
echo "demo done: $MODEL loads in transformers (AutoModelForCausalLM) and tokenizers (Tokenizer.from_file)"
