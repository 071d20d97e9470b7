#!/usr/bin/env bash
# make demo, until the R1-Zero recipe lands: the most complete pipeline that exists today.
# 1. train a byte-level BPE tokenizer on the project's own documentation;
# 2. tokenize that text into shards;
# 3. pretrain the 'tiny' Llama-architecture model on it (a minute on a laptop CPU), watching the
#    loss fall; the run is a Hugging Face model directory;
# 4. render a question with the DeepSeek-R1 chat template and decode greedily with the KV cache.
set -euo pipefail
R1=${R1:-build/r1}
RUN=${RUN:-runs/demo}
STEPS=${STEPS:-120}
rm -rf "$RUN"
mkdir -p "$RUN"

echo "== the architectures r1 knows (exact parameter counts)"
"$R1" model info --list
echo
echo "== 1. a tokenizer: byte-level BPE on the project's docs, DeepSeek-V3 pre-tokenization,"
echo "      padded to the tiny model's 4096-token vocabulary"
"$R1" tokenizer train --input README.md docs/*.md --vocab-size 4096 --pad-to-multiple 4096 \
  --pattern deepseek-v3 --special '<｜begin▁of▁sentence｜>,<｜end▁of▁sentence｜>,<｜User｜>,<｜Assistant｜>' \
  --out "$RUN/tokenizer.json"
echo
echo "== 2. token shards"
"$R1" data prepare --tokenizer "$RUN/tokenizer.json" --input README.md docs --eos '<｜end▁of▁sentence｜>' --out "$RUN/data"
echo
echo "== 3. pretraining 'tiny' for $STEPS steps (metrics in $RUN/tiny/metrics.jsonl)"
"$R1" pretrain --preset tiny --tokenizer "$RUN/tokenizer.json" --data "$RUN/data" --out "$RUN/tiny" \
  --steps "$STEPS" --seq-len 128 --batch-tokens 4096 --micro-batch 8 --lr 3e-3 --warmup-steps 10 \
  --schedule cosine --save-every 50
first=$(head -n 1 "$RUN/tiny/metrics.jsonl" | sed -E 's/.*"loss":([0-9.]+).*/\1/')
last=$(tail -n 1 "$RUN/tiny/metrics.jsonl" | sed -E 's/.*"loss":([0-9.]+).*/\1/')
echo "loss: step 1 $first -> step $STEPS $last"
echo
echo "== 4. a question in the DeepSeek-R1 chat template, answered by the generation engine"
"$R1" generate --model "$RUN/tiny" --prompt "What does the KV cache hold?" --chat --chat-template deepseek-r1 \
  --max-new-tokens 32 --temperature 0 > "$RUN/generation.jsonl"
echo -n "the model says: "
sed -E 's/.*"text":"(([^"\\]|\\.)*)".*/\1/' "$RUN/generation.jsonl"
echo
echo "demo done: $RUN/tiny loads in transformers (AutoModelForCausalLM) and tokenizers (Tokenizer.from_file)"
echo "talk to it:     $R1 chat --model $RUN/tiny --chat-template deepseek-r1"
echo "or serve it:    $R1 serve --model $RUN/tiny --chat-template deepseek-r1 --run $RUN/tiny"
echo "                (OpenAI API at http://127.0.0.1:8080/v1, web UI with the training curves at http://127.0.0.1:8080/)"
