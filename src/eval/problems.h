// Evaluation problems as r1 eval and GRPO's held-out evaluation pose and grade them. The prompt: in
// a chat format with the R1 instruction ("Please reason step by step, and put your final answer
// within \boxed{}." for math), in DeepSeek-R1-Zero's template, or plain (the problem as written).
// The grade: right when the first (accuracy) reward is full; formatted when an answer was found.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "eval/tasks.h"
#include "rewards/rewards.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace r1 {

// What chat prompts add to a math problem: "Please reason step by step, and put your final answer
// within \boxed{}." (DeepSeek-R1's evaluation instruction).
extern const char* const kMathInstruction;

// "auto" becomes "chat" when the model has a chat format, else "plain"; anything but chat, plain
// and r1-zero (or chat without a format) is an r1::Error naming `flag`.
std::string resolve_prompt_format(const std::string& format, const std::optional<ChatFormat>& chat_format,
                                  const std::string& flag = "--prompt-format");

// Token ids of `item`'s prompt; `text` receives it as text.
std::vector<int64_t> task_prompt(const EvalItem& item, const std::string& kind, const std::string& format,
                                 const Tokenizer& tokenizer, const std::optional<ChatFormat>& chat_format,
                                 std::string* text);

struct Graded {
  ScoredCompletion scored;
  bool correct = false;
  bool formatted = false;  // an answer (math) or code was found
  std::string answer;      // extracted (math)
  std::string answer_source;  // where it was found: "boxed", "answer_tag", "answer_is", ... (math)
};

// `s` is `reward`'s score of response `text` to a problem of `kind` ("math" or "code").
Graded grade(const CombinedReward& reward, const ScoredCompletion& s, const std::string& kind, const std::string& text);

}  // namespace r1
