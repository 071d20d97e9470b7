#!/usr/bin/env bash
# The tiny R1-Zero (make demo): reasoning emerging from GRPO with a rule-based accuracy reward alone,
# on a laptop CPU in minutes. A small base model is pretrained on sums where 30% of the documents
# reason column by column in <think>...</think> before <answer>N</answer> and 70% answer bare, so it
# can reason but rarely does; GRPO (no SFT) then rewards right answers only. Held-out 3-digit sums
# that carry at least twice (where answering without working fails most) are evaluated greedily
# before and after; OUT/summary.json has the numbers. THINK_FRACTION, PRETRAIN_STEPS, GRPO_STEPS,
# GRPO_LR override the recipe's values.
# OUT=DIR (default runs/tiny-r1-zero), SEED=N, FAST=1 (a smoke run for tests), OPS=add,sub,mul,chain
# (the operations of the task; the default is addition), MAX_TOKENS (completion limit, default 80),
# NPROC (training processes, default 1; 2 = data-parallel pretraining and GRPO, faster on 2+ cores),
# PRECISION (--precision of pretraining and GRPO: auto = fp32 on a CPU; bf16 is faster on CPUs with
# AMX, with other float rounding, docs/grpo.md), ROLLOUT_DTYPE (--rollout-dtype of GRPO: fp32, or int8
# weights for the rollouts' decoding). BASE_ONLY=1 stops after the base model (OUT/base,
# with the task in OUT/task): what bench/run_grpo.py starts GRPO from. ARCH=v3 runs the same recipe on
# R1's own architecture (DeepSeek-V3's multi-head latent attention, DeepSeekMoE and one multi-token
# prediction module, trained with the MTP loss and drafting for speculative decoding in the evaluations)
# at the same width. FORMAT_RUN=0 skips the second GRPO run (accuracy + format reward); ARCH=v3's
# default, as its steps cost ~1.6x the dense model's and the bar is the accuracy-only run's.
set -euo pipefail
R1=${R1:-build/r1}
OUT=${OUT:-runs/tiny-r1-zero}
SEED=${SEED:-1}
ARCH=${ARCH:-llama}
FORMAT_RUN=${FORMAT_RUN:-$([ "$ARCH" = v3 ] && echo 0 || echo 1)}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-1000}
GRPO_STEPS=${GRPO_STEPS:-250}
GRPO_LR=${GRPO_LR:-5e-5}
OPS=${OPS:-add}
THINK_FRACTION=${THINK_FRACTION:-0.3}
MAX_TOKENS=${MAX_TOKENS:-80}
PRECISION=${PRECISION:-auto}
ROLLOUT_DTYPE=${ROLLOUT_DTYPE:-fp32}  # int8: GRPO's rollouts decode by int8 copies of the weights
if [ "${FAST:-0}" = 1 ]; then PRETRAIN_STEPS=60; GRPO_STEPS=4; fi
# NPROC > 1 runs pretraining and GRPO data-parallel (r1 launch): a model this small keeps the cores
# busier as single-threaded processes than as one multi-threaded process (1.1-1.2x on 2 cores,
# docs/grpo.md#speed). The same computation up to the order of float sums, but that is enough to
# move the base model's accuracy (docs/grpo.md), so the default stays one process.
CORES=$(nproc 2>/dev/null || echo 1)
NPROC=${NPROC:-1}
THREADS=$(( CORES / NPROC > 0 ? CORES / NPROC : 1 ))
train() { if [ "$NPROC" -gt 1 ]; then "$R1" launch --nproc "$NPROC" -- "$@" --threads "$THREADS"; else "$R1" "$@"; fi; }
start=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== 1. the task: sums with column-by-column reasoning in 30% of the corpus, 3-digit sums with 2+ carries held out"
"$R1" data arithmetic --out "$OUT/task" --seed "$SEED" --ops "$OPS" --corpus-documents 30000 --think-fraction "$THINK_FRACTION" \
  --test-min-carries 2
echo "== 2. tokenizer and base model"
"$R1" tokenizer train --input "$OUT/task/corpus.jsonl" --field text --vocab-size 320 --pattern qwen2 \
  --special '<|eos|>' --out "$OUT/tokenizer.json"
"$R1" data prepare --tokenizer "$OUT/tokenizer.json" --input "$OUT/task/corpus.jsonl" --eos '<|eos|>' --out "$OUT/data"
EOS_ID=$("$R1" tokenizer info --tokenizer "$OUT/tokenizer.json" | sed -n 's/^special: *\([0-9]*\) <|eos|>.*/\1/p')
arch_pretrain=()
arch_eval=()
if [ "$ARCH" = v3 ]; then
arch_pretrain=(--mtp-weight "${MTP_WEIGHT:-0.1}")
arch_eval=(--speculative)
# Latent attention (q LoRA 64, latent 32, heads of 32 + 16 rope dims), a dense first layer, then 8
# routed experts in 4 groups (2 per token from the best 2 groups) and one shared expert; one MTP module
# (MTP_WEIGHT, default 0.1: DeepSeek-V3's later value; the MTP loss makes the trunk compute the sum,
# so the higher the weight the less GRPO has left to gain, docs/grpo.md; the evaluations decode
# with its drafts).
cat > "$OUT/config.json" <<JSON
{"architectures": ["DeepseekV3ForCausalLM"], "vocab_size": 320, "hidden_size": 128, "intermediate_size": 384,
 "num_hidden_layers": 4, "num_attention_heads": 4, "max_position_embeddings": 256,
 "q_lora_rank": 64, "kv_lora_rank": 32, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16, "v_head_dim": 32,
 "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2, "moe_intermediate_size": 96,
 "first_k_dense_replace": 1, "n_group": 4, "topk_group": 2, "norm_topk_prob": true, "routed_scaling_factor": 1.0,
 "num_nextn_predict_layers": 1, "rms_norm_eps": 1e-6, "initializer_range": 0.02, "tie_word_embeddings": true,
 "hidden_act": "silu", "eos_token_id": $EOS_ID}
JSON
elif [ "$ARCH" = llama ]; then
cat > "$OUT/config.json" <<JSON
{"architectures": ["LlamaForCausalLM"], "vocab_size": 320, "hidden_size": 128, "intermediate_size": 384,
 "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 256,
 "rms_norm_eps": 1e-6, "initializer_range": 0.02, "tie_word_embeddings": true, "hidden_act": "silu",
 "eos_token_id": $EOS_ID}
JSON
else
  echo "ARCH must be llama or v3, got '$ARCH'" >&2
  exit 2
fi
train pretrain --model-config "$OUT/config.json" --tokenizer "$OUT/tokenizer.json" --data "$OUT/data" \
  --out "$OUT/base" --steps "$PRETRAIN_STEPS" --seq-len 128 --batch-tokens 6144 --micro-batch $(( 48 / NPROC )) --lr 3e-3 \
  --warmup-steps 50 --schedule cosine --seed "$SEED" --precision "$PRECISION" "${arch_pretrain[@]}"
if [ "${BASE_ONLY:-0}" = 1 ]; then echo "base model in $OUT/base ($(( $(date +%s) - start )) s)"; exit 0; fi
eval_args=(--task "$OUT/task/test.jsonl" --prompt-format plain --temperature 0 --max-new-tokens "$MAX_TOKENS"
           --reward accuracy_math:1,format_think:0 "${arch_eval[@]}")
# Both GRPO runs: 16 prompts x 8 completions per step, temperature 1, no KL; only the reward differs.
grpo_args=(--init "$OUT/base" --prompts "$OUT/task/train.jsonl" --prompt-template plain --steps "$GRPO_STEPS"
           --prompts-per-step 16 --group-size 8 --micro-batch 32 --lr "$GRPO_LR" --temperature 1
           --max-completion-tokens "$MAX_TOKENS" --beta 0 --seed "$SEED" --sample-every 10 --precision "$PRECISION"
           --rollout-dtype "$ROLLOUT_DTYPE")
echo "== 3. the base model on the held-out problems"
"$R1" eval --model "$OUT/base" "${eval_args[@]}" --out-dir "$OUT/eval-before" | tee "$OUT/eval-before.json"
echo "== 4. GRPO with the accuracy reward alone"
train grpo "${grpo_args[@]}" --reward accuracy_math:1,format_think:0 --out "$OUT/grpo"
echo "== 5. the trained model on the held-out problems"
"$R1" eval --model "$OUT/grpo" "${eval_args[@]}" --out-dir "$OUT/eval-after" | tee "$OUT/eval-after.json"
if [ "$FORMAT_RUN" = 1 ]; then
echo "== 6. the same GRPO with a format reward for the think block too (accuracy + 0.5 x format)"
train grpo "${grpo_args[@]}" --reward accuracy_math:1,format_think:0.5 --out "$OUT/grpo-format"
"$R1" eval --model "$OUT/grpo-format" "${eval_args[@]}" --out-dir "$OUT/eval-format" | tee "$OUT/eval-format.json"
"$R1" report "$OUT/grpo-format" --out "$OUT/report-format.html"
else
echo '{}' > "$OUT/eval-format.json"  # not run: its summary fields are null
fi

"$R1" report "$OUT/grpo" --out "$OUT/report.html"

field() { value=$(sed -n "s/^ *\"$1\": \([-0-9.e]*\),*$/\1/p" "$2" | head -n 1); echo "${value:-null}"; }
seconds=$(( $(date +%s) - start ))
cat > "$OUT/summary.json" <<JSON
{
  "accuracy_before": $(field 'pass@1' "$OUT/eval-before.json"),
  "accuracy_after": $(field 'pass@1' "$OUT/eval-after.json"),
  "think_rate_before": $(field think_rate "$OUT/eval-before.json"),
  "think_rate_after": $(field think_rate "$OUT/eval-after.json"),
  "format_rate_before": $(field reward_format_think "$OUT/eval-before.json"),
  "format_rate_after": $(field reward_format_think "$OUT/eval-after.json"),
  "length_before": $(field mean_response_tokens "$OUT/eval-before.json"),
  "length_after": $(field mean_response_tokens "$OUT/eval-after.json"),
  "accuracy_after_with_format_reward": $(field 'pass@1' "$OUT/eval-format.json"),
  "think_rate_after_with_format_reward": $(field think_rate "$OUT/eval-format.json"),
  "format_rate_after_with_format_reward": $(field reward_format_think "$OUT/eval-format.json"),
  "length_after_with_format_reward": $(field mean_response_tokens "$OUT/eval-format.json"),
  "speculative_acceptance_before": $(field speculative_acceptance "$OUT/eval-before.json"),
  "speculative_acceptance_after": $(field speculative_acceptance "$OUT/eval-after.json"),
  "pretrain_steps": $PRETRAIN_STEPS, "grpo_steps": $GRPO_STEPS, "seed": $SEED, "arch": "$ARCH",
  "seconds": $seconds
}
JSON
echo
echo "== tiny R1-Zero: held-out 3-digit sums, greedy      (base -> GRPO accuracy reward | accuracy + format)"
echo "   accuracy        $(field 'pass@1' "$OUT/eval-before.json") -> $(field 'pass@1' "$OUT/eval-after.json") | $(field 'pass@1' "$OUT/eval-format.json")"
echo "   thinking rate   $(field think_rate "$OUT/eval-before.json") -> $(field think_rate "$OUT/eval-after.json") | $(field think_rate "$OUT/eval-format.json")   (a closed <think> block)"
echo "   R1-Zero format  $(field reward_format_think "$OUT/eval-before.json") -> $(field reward_format_think "$OUT/eval-after.json") | $(field reward_format_think "$OUT/eval-format.json")   (one think block first, then <answer>)"
echo "   response tokens $(field mean_response_tokens "$OUT/eval-before.json") -> $(field mean_response_tokens "$OUT/eval-after.json") | $(field mean_response_tokens "$OUT/eval-format.json")"
if [ "$ARCH" = v3 ]; then
  echo "   MTP drafts accepted in speculative decoding: $(field speculative_acceptance "$OUT/eval-before.json") -> $(field speculative_acceptance "$OUT/eval-after.json")"
fi
echo "   total ${seconds} s; numbers in $OUT/summary.json, curves and samples in $OUT/report.html (accuracy only)"
if [ "$FORMAT_RUN" = 1 ]; then echo "   and $OUT/report-format.html (accuracy + format)"; fi
echo "chat with it: $R1 chat --model $OUT/grpo --chat-template plain --temperature 0   (then type: Q: 487+365=? A:)"
echo "ask it once:  $R1 generate --model $OUT/grpo --prompt 'Q: 487+365=? A:' --temperature 0"
echo "serve it:     $R1 serve --model $OUT/grpo --chat-template plain --run $OUT/grpo"
echo "              (OpenAI API and web UI on http://127.0.0.1:8080/: chat, and the GRPO curves in its Run tab)"
