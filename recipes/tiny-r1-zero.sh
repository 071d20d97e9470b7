#!/usr/bin/env bash
# The tiny R1-Zero: reasoning emerging from GRPO with rule-based rewards, on a CPU.
# (Work in progress, issue 7: not yet `make demo`.) OUT=DIR (default runs/tiny-r1-zero), SEED=N, FAST=1.
set -euo pipefail
R1=${R1:-build/r1}
OUT=${OUT:-runs/tiny-r1-zero}
SEED=${SEED:-1}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-1500}
GRPO_STEPS=${GRPO_STEPS:-100}
if [ "${FAST:-0}" = 1 ]; then PRETRAIN_STEPS=60; GRPO_STEPS=4; fi
start=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== 1. the task: sums with column-by-column reasoning in 30% of the corpus, 3-digit sums held out"
"$R1" data arithmetic --out "$OUT/task" --seed "$SEED" --corpus-documents 30000 --think-fraction 0.3
echo "== 2. tokenizer and base model"
"$R1" tokenizer train --input "$OUT/task/corpus.jsonl" --field text --vocab-size 320 --pattern qwen2 \
  --special '<|eos|>' --out "$OUT/tokenizer.json"
"$R1" data prepare --tokenizer "$OUT/tokenizer.json" --input "$OUT/task/corpus.jsonl" --eos '<|eos|>' --out "$OUT/data"
EOS_ID=$("$R1" tokenizer info --tokenizer "$OUT/tokenizer.json" | sed -n 's/^special: *\([0-9]*\) <|eos|>.*/\1/p')
cat > "$OUT/config.json" <<JSON
{"architectures": ["LlamaForCausalLM"], "vocab_size": 320, "hidden_size": 128, "intermediate_size": 384,
 "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 256,
 "rms_norm_eps": 1e-6, "initializer_range": 0.02, "tie_word_embeddings": true, "hidden_act": "silu",
 "eos_token_id": $EOS_ID}
JSON
"$R1" pretrain --model-config "$OUT/config.json" --tokenizer "$OUT/tokenizer.json" --data "$OUT/data" \
  --out "$OUT/base" --steps "$PRETRAIN_STEPS" --seq-len 128 --batch-tokens 6144 --micro-batch 48 --lr 3e-3 \
  --warmup-steps 50 --schedule cosine --seed "$SEED"
eval_args=(--task "$OUT/task/test.jsonl" --prompt-format plain --temperature 0 --max-new-tokens 64
           --reward accuracy_math:1,format_think:0)
echo "== 3. the base model on the held-out problems"
"$R1" eval --model "$OUT/base" "${eval_args[@]}" --out-dir "$OUT/eval-before" | tee "$OUT/eval-before.json"
echo "== 4. GRPO with the accuracy reward alone"
"$R1" grpo --init "$OUT/base" --prompts "$OUT/task/train.jsonl" --out "$OUT/grpo" --prompt-template plain \
  --reward accuracy_math:1,format_think:0 --steps "$GRPO_STEPS" --prompts-per-step 16 --group-size 8 \
  --micro-batch 32 --lr 5e-4 --temperature 1 --max-completion-tokens 64 --beta 0 --seed "$SEED" --sample-every 10
echo "== 5. the trained model on the held-out problems"
"$R1" eval --model "$OUT/grpo" "${eval_args[@]}" --out-dir "$OUT/eval-after" | tee "$OUT/eval-after.json"
echo "total: $(( $(date +%s) - start )) s"
