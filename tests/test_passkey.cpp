// The passkey prompts: the right length, the key at the asked depth, and the answer parsing.
#include <gtest/gtest.h>

#include "eval/passkey.h"
#include "test_data_dir.h"

namespace r1 {
namespace {

TEST(Passkey, PromptHasTheLengthAndTheKeyAtTheDepth) {
  const Tokenizer& tok = testing::deepseek_v3_tokenizer();
  for (int64_t context : {256, 2000}) {
    double last_position = -1;
    for (double depth : {0.0, 0.5, 1.0}) {
      const auto ids = passkey_prompt(tok, context, depth, 48213);
      // Whole filler sentences only, so a little shorter than asked, never longer.
      EXPECT_LE(static_cast<int64_t>(ids.size()), context);
      EXPECT_GE(static_cast<int64_t>(ids.size()), context - 30);
      EXPECT_EQ(ids[0], *tok.bos_id());
      const std::string text = tok.decode(std::vector<int32_t>(ids.begin() + 1, ids.end()));
      const size_t key = text.find("The pass key is 48213. Remember it. 48213 is the pass key.");
      ASSERT_NE(key, std::string::npos);
      EXPECT_EQ(text.find("48213", key + 60), std::string::npos);  // hidden once
      // Position within the filler: between the task statement and the question.
      const size_t start = text.find("important information there.") + 28, end = text.rfind(" What is the pass key?");
      const double position = (static_cast<double>(key) - start) / static_cast<double>(end - start);
      EXPECT_NEAR(position, depth, 0.1) << context;
      EXPECT_GT(position, last_position);
      last_position = position;
      EXPECT_EQ(text.substr(text.size() - 37), "What is the pass key? The pass key is");
    }
  }
}

TEST(Passkey, AnswerIsTheFirstNumber) {
  EXPECT_EQ(passkey_answer(" 48213. Remember"), 48213);
  EXPECT_EQ(passkey_answer("is 482 13"), 482);
  EXPECT_EQ(passkey_answer("no idea"), -1);
  EXPECT_EQ(passkey_answer("99999999999999999999"), 999999999999);  // bounded, no overflow
}

}  // namespace
}  // namespace r1
