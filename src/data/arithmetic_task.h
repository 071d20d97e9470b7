// The built-in task of the tiny R1-Zero demo: arithmetic problems with worked, column-by-column
// reasoning: addition (with carries), subtraction (with borrows, never negative), multiplication by
// a one-digit number (with carries), and chains "a+b-c" worked one operation at a time. Writes a pretraining corpus in which some documents reason inside <think>...</think>
// before <answer>N</answer> and the rest give the bare answer (so reasoning is latent in the base
// model but not its default, as in R1-Zero), and train / held-out problem files for GRPO and
// eval. Deterministic for a seed. Torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace r1 {

struct ArithmeticTaskOptions {
  uint64_t seed = 0;
  std::vector<std::string> ops = {"add"};  // add, sub, mul, chain: each problem picks one uniformly
  int min_digits = 1, max_digits = 3;   // operand sizes of the corpus and the training problems
  int64_t corpus_documents = 20000;
  double think_fraction = 0.3;          // corpus documents that reason before answering
  int64_t train_problems = 2000;
  int64_t test_problems = 200;          // held out: never in the corpus or the training problems
  int test_digits = 3;                  // operand size of the held-out problems
  int test_min_carries = 0;             // held-out problems need at least this many carries (or borrows)
  // "qa": prompts "Q: 12+7=? A:" for base models; "chat": questions "What is 12 + 7?" for instruct
  // models, with a "prompt" that adds r1 eval's instruction (a \boxed{} answer) for GRPO.
  std::string style = "qa";
};

struct ArithmeticTaskSummary {
  int64_t corpus_documents = 0, think_documents = 0, train_problems = 0, test_problems = 0;
};

// One problem: op is "add" (a + b), "sub" (a - b, a >= b), "mul" (a * b, b one digit) or "chain"
// (a + b - c, left to right, c <= a + b).
struct ArithmeticProblem {
  std::string op;
  int64_t a = 0, b = 0, c = 0;
  int64_t answer() const;
  int carries() const;                // columns that carry (add, mul) or borrow (sub); both steps of a chain
  std::string prompt() const;         // "Q: 123+456=? A:"
  std::string question() const;       // "What is 123 + 456?" (chat style)
  std::string worked_answer() const;  // " <think>3+6=9 so 9, 2+5=7 so 79, 1+4=5 so 579</think> <answer>579</answer>"
  std::string bare_answer() const;    // " <answer>579</answer>"
};

// The addition problem's prompt and worked completion (the demo's original task).
std::string arithmetic_prompt(int64_t a, int64_t b);
std::string arithmetic_worked_answer(int64_t a, int64_t b);

// Writes DIR/corpus.jsonl ({"text"} per document), DIR/train.jsonl, DIR/test.jsonl ({"prompt", "answer",
// "op"}, and in chat style "question": r1 eval poses the question, GRPO the prompt).
ArithmeticTaskSummary write_arithmetic_task(const std::string& dir, const ArithmeticTaskOptions& options);

}  // namespace r1
