// Splitting R1 answers into reasoning_content and content, whatever the delta boundaries.
#include <gtest/gtest.h>

#include "serve/reasoning.h"

namespace r1 {
namespace {

// Feeds `text` in pieces of `step` bytes and returns (reasoning, content).
std::pair<std::string, std::string> split(const std::string& text, size_t step, bool in_think) {
  ThinkSplitter s(in_think);
  std::string reasoning, content;
  for (size_t i = 0; i < text.size(); i += step) {
    auto p = s.push(text.substr(i, step));
    reasoning += p.reasoning;
    content += p.content;
  }
  auto p = s.finish();
  return {reasoning + p.reasoning, content + p.content};
}

TEST(ThinkSplitter, SeparatesReasoningFromTheAnswerAtAnyDeltaBoundary) {
  for (size_t step : {1, 2, 3, 5, 7, 100}) {
    EXPECT_EQ(split("<think>\n2+2 is 4.\n</think>\n\nThe answer is 4.", step, false),
              std::make_pair(std::string("\n2+2 is 4.\n"), std::string("The answer is 4.")))
        << step;
    // DeepSeek-R1's template already opened <think>: the answer starts inside it.
    EXPECT_EQ(split("hmm, 4.</think>\n\n**4**", step, true), std::make_pair(std::string("hmm, 4."), std::string("**4**")))
        << step;
    // No think block: everything is content, including a "<" that is not a tag.
    EXPECT_EQ(split("a < b and <thin ice>", step, false), std::make_pair(std::string(), std::string("a < b and <thin ice>")))
        << step;
    // A think block that never closes is all reasoning.
    EXPECT_EQ(split("<think>still going", step, false), std::make_pair(std::string("still going"), std::string()))
        << step;
  }
}

}  // namespace
}  // namespace r1
