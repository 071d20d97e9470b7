#include "eval/problems.h"

#include "rewards/answer_extraction.h"
#include "util/error.h"

namespace r1 {

const char* const kMathInstruction = "Please reason step by step, and put your final answer within \\boxed{}.";

std::string resolve_prompt_format(const std::string& format, const std::optional<ChatFormat>& chat_format,
                                  const std::string& flag) {
  if (format == "auto") return chat_format ? "chat" : "plain";
  if (format == "chat" && !chat_format)
    throw Error(flag + " chat: the model has no chat template r1 knows (--chat-template NAME)");
  if (format != "chat" && format != "plain" && format != "r1-zero") throw Error(flag + ": auto, chat, plain or r1-zero");
  return format;
}

std::vector<int64_t> task_prompt(const EvalItem& item, const std::string& kind, const std::string& format,
                                 const Tokenizer& tokenizer, const std::optional<ChatFormat>& chat_format,
                                 std::string* text) {
  const std::string instruction = kind == "math"
      ? item.question + "\n" + kMathInstruction
      : "Complete the following Python function. Answer with the complete function in a ```python code block.\n\n"
        "```python\n" + item.question + "```";
  std::vector<int32_t> ids;
  if (format == "plain") {
    *text = item.question;  // base models: the problem exactly as written
    ids = tokenizer.encode(*text, true);
  } else {
    const ChatFormat f = format == "r1-zero" ? ChatFormat::kR1Zero : *chat_format;
    const auto rendered = render_chat(tokenizer, f, {{"user", format == "r1-zero" ? item.question : instruction}}, true);
    *text = rendered.text;
    ids = rendered.ids;
  }
  return {ids.begin(), ids.end()};
}

Graded grade(const CombinedReward& reward, const ScoredCompletion& s, const std::string& kind, const std::string& text) {
  Graded g;
  g.scored = s;
  // Correct: the first (accuracy) reward is full.
  g.correct = s.components.at(reward.parts()[0].name).score >= 1 - 1e-9;
  if (kind == "math") {
    std::string after = text;
    const size_t end_think = after.rfind("</think>");
    if (end_think != std::string::npos) after = after.substr(end_think + 8);
    const auto e = extract_answer(after);
    g.formatted = e.found();
    g.answer = e.text;
    g.answer_source = e.source;
  } else {
    g.formatted = text.find("```") != std::string::npos || text.find("return") != std::string::npos;
  }
  return g;
}

}  // namespace r1
