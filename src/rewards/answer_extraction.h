// Finding the final answer in a model's response: the last \boxed{...} / \fbox{...} (braces
// matched, also the brace-less "\boxed 5"), <answer>...</answer>, GSM8K's "#### N", "the
// (final) answer is X", and a last-number fallback that rewards leave off. Torch-free.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace r1 {

// The contents of every \boxed{...} and \fbox{...} in order (an unclosed one is ignored).
std::vector<std::string> boxed_contents(std::string_view text);

struct ExtractOptions {
  bool boxed = true, answer_tag = true, gsm8k = true, answer_is = true;
  bool last_number = false;  // off for rewards: any number in the text would then count
};

struct ExtractedAnswer {
  std::string text;    // the answer as written (empty when none was found)
  std::string source;  // "boxed", "answer_tag", "gsm8k", "answer_is", "last_number" or "none"
  // Every boxed answer, when there are several: the caller decides whether they agree (the
  // math reward gives 0 to a response whose boxed answers are not all equivalent).
  std::vector<std::string> all_boxed;
  bool found() const { return source != "none"; }
};

ExtractedAnswer extract_answer(std::string_view text, const ExtractOptions& options = {});

}  // namespace r1
