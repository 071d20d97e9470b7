#!/usr/bin/env bash
# The second half of the tiny R1 (optional, after tiny-r1-zero.sh): DeepSeek-R1's distillation in
# miniature. The GRPO model of the main job is the teacher: rejection sampling keeps its right,
# well-formed answers to the training problems; a smaller student with the same tokenizer is
# fine-tuned on them (SFT only); the same student trained with GRPO directly is the comparison
# (R1 paper: distilling a strong reasoner beats RL on the small model). Held-out accuracy of
# teacher, student base, distilled student and RL student; OUT/distill.json has the numbers.
#   ZERO=DIR   the tiny-r1-zero run (default runs/tiny-r1-zero; run first if missing)
#   TEACHER, TASK, DATA, TOKENIZER override its parts; OUT=DIR (default ZERO/distill); SEED=N;
#   FAST=1 (a smoke run for tests: a random-init student, few steps).
set -euo pipefail
R1=${R1:-build/r1}
ZERO=${ZERO:-runs/tiny-r1-zero}
SEED=${SEED:-1}
if [ -z "${TEACHER:-}" ] && [ ! -f "$ZERO/grpo/config.json" ]; then OUT="$ZERO" bash "$(dirname "$0")/tiny-r1-zero.sh"; fi
TEACHER=${TEACHER:-$ZERO/grpo}
TASK=${TASK:-$ZERO/task}
DATA=${DATA:-$ZERO/data}
TOKENIZER=${TOKENIZER:-$TEACHER/tokenizer.json}
OUT=${OUT:-$ZERO/distill}
MAX_TOKENS=${MAX_TOKENS:-80}
SAMPLES=${SAMPLES:-4}
STUDENT_PRETRAIN_STEPS=${STUDENT_PRETRAIN_STEPS:-1500}
SFT_STEPS=${SFT_STEPS:-400}
GRPO_STEPS=${GRPO_STEPS:-100}
if [ "${FAST:-0}" = 1 ]; then STUDENT_PRETRAIN_STEPS=0; SFT_STEPS=${SFT_STEPS_FAST:-300}; GRPO_STEPS=2; SAMPLES=${SAMPLES_FAST:-8}; fi
rm -rf "$OUT"
mkdir -p "$OUT"
now() { date +%s; }

echo "== 1. rejection sampling: $SAMPLES answers per training problem from the teacher, right and in <think> kept"
t0=$(now)
"$R1" sample --model "$TEACHER" --prompts "$TASK/train.jsonl" --prompt-template plain --n "$SAMPLES" \
  --temperature 0.7 --top-p 0.95 --max-new-tokens "$MAX_TOKENS" --reward accuracy_math:1,format_think:0 --keep correct \
  --require-format --seed "$SEED" --out "$OUT/traces.jsonl"
sample_s=$(( $(now) - t0 ))

echo "== 2. the student: half the width, half the depth of the teacher, the teacher's tokenizer"
EOS_ID=$("$R1" tokenizer info --tokenizer "$TOKENIZER" | sed -n 's/^special: *\([0-9]*\) <|eos|>.*/\1/p')
VOCAB=$(sed -n 's/.*"vocab_size": *\([0-9]*\).*/\1/p' "$TEACHER/config.json" | head -n 1)
cat > "$OUT/student-config.json" <<JSON
{"architectures": ["LlamaForCausalLM"], "vocab_size": $VOCAB, "hidden_size": 64, "intermediate_size": 192,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 256,
 "rms_norm_eps": 1e-6, "initializer_range": 0.02, "tie_word_embeddings": true, "hidden_act": "silu",
 "eos_token_id": $EOS_ID}
JSON
t0=$(now)
if [ "$STUDENT_PRETRAIN_STEPS" -gt 0 ]; then
  "$R1" pretrain --model-config "$OUT/student-config.json" --tokenizer "$TOKENIZER" --data "$DATA" \
    --out "$OUT/student-base" --steps "$STUDENT_PRETRAIN_STEPS" --seq-len 128 --batch-tokens 6144 --micro-batch 48 \
    --lr 3e-3 --warmup-steps 50 --schedule cosine --seed "$SEED"
else
  "$R1" model init --config-json "$OUT/student-config.json" --out "$OUT/student-base" --seed "$SEED"
  cp "$TOKENIZER" "$OUT/student-base/tokenizer.json"
fi
pretrain_s=$(( $(now) - t0 ))

echo "== 3. distillation: SFT of the student on the teacher's kept answers"
t0=$(now)
"$R1" sft --init "$OUT/student-base" --tokenizer "$TOKENIZER" --teacher "$TEACHER" --data "$OUT/traces.jsonl" \
  --out "$OUT/student-distilled" --steps "$SFT_STEPS" --seq-len 96 --batch-tokens 3072 --micro-batch 32 --lr 3e-3 \
  --warmup-steps 20 --schedule cosine --seed "$SEED"
sft_s=$(( $(now) - t0 ))

echo "== 4. the comparison: the same student trained with GRPO directly (accuracy reward, as the teacher was)"
t0=$(now)
"$R1" grpo --init "$OUT/student-base" --prompts "$TASK/train.jsonl" --out "$OUT/student-grpo" --prompt-template plain \
  --reward accuracy_math:1,format_think:0 --steps "$GRPO_STEPS" --prompts-per-step 16 --group-size 8 \
  --micro-batch 32 --lr 1e-4 --temperature 1 --max-completion-tokens "$MAX_TOKENS" --beta 0 --seed "$SEED"
grpo_s=$(( $(now) - t0 ))

echo "== 5. held-out accuracy, greedy"
eval_args=(--task "$TASK/test.jsonl" --prompt-format plain --temperature 0 --max-new-tokens "$MAX_TOKENS"
           --reward accuracy_math:1,format_think:0)
for m in teacher:"$TEACHER" student-base:"$OUT/student-base" student-distilled:"$OUT/student-distilled" \
         student-grpo:"$OUT/student-grpo"; do
  "$R1" eval --model "${m#*:}" "${eval_args[@]}" --out-dir "$OUT/eval-${m%%:*}" > "$OUT/eval-${m%%:*}.json"
done
field() { sed -n "s/^ *\"$1\": \([-0-9.e]*\),*$/\1/p" "$2" | head -n 1; }
kept=$(field kept "$OUT/traces.jsonl.summary.json")
cat > "$OUT/distill.json" <<JSON
{
  "teacher_accuracy": $(field 'pass@1' "$OUT/eval-teacher.json"),
  "student_base_accuracy": $(field 'pass@1' "$OUT/eval-student-base.json"),
  "student_distilled_accuracy": $(field 'pass@1' "$OUT/eval-student-distilled.json"),
  "student_grpo_accuracy": $(field 'pass@1' "$OUT/eval-student-grpo.json"),
  "student_distilled_think_rate": $(field reward_format_think "$OUT/eval-student-distilled.json"),
  "student_grpo_think_rate": $(field reward_format_think "$OUT/eval-student-grpo.json"),
  "traces_kept": $kept,
  "sample_seconds": $sample_s, "student_pretrain_seconds": $pretrain_s, "sft_seconds": $sft_s, "grpo_seconds": $grpo_s,
  "sft_steps": $SFT_STEPS, "grpo_steps": $GRPO_STEPS, "seed": $SEED
}
JSON
echo
echo "== tiny R1 distillation: held-out greedy accuracy (think rate)"
printf '   %-34s %s\n' "teacher (GRPO, 0.9M)" "$(field 'pass@1' "$OUT/eval-teacher.json") ($(field reward_format_think "$OUT/eval-teacher.json"))"
printf '   %-34s %s\n' "student base (0.1M)" "$(field 'pass@1' "$OUT/eval-student-base.json") ($(field reward_format_think "$OUT/eval-student-base.json"))"
printf '   %-34s %s\n' "student + SFT on $kept teacher answers" "$(field 'pass@1' "$OUT/eval-student-distilled.json") ($(field reward_format_think "$OUT/eval-student-distilled.json")), sampling ${sample_s} s + SFT ${sft_s} s"
printf '   %-34s %s\n' "student + GRPO, $GRPO_STEPS steps" "$(field 'pass@1' "$OUT/eval-student-grpo.json") ($(field reward_format_think "$OUT/eval-student-grpo.json")), ${grpo_s} s"
echo "   numbers in $OUT/distill.json"
