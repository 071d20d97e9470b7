// Every reward on fixed responses, with the exact scores they must give, and their combination.
#include <gtest/gtest.h>

#include "expect_error.h"
#include "rewards/rewards.h"

namespace r1 {
namespace {

using testing::expect_error;

RewardInput input(const std::string& completion, nlohmann::json metadata = nlohmann::json::object(),
                  const std::string& prompt = "What is 1/2 + 0?") {
  return {prompt, completion, std::move(metadata)};
}

double score(const std::string& name, const RewardInput& in, const RewardOptions& o = {}) {
  return make_reward(name, o, nullptr)(in).score;
}

TEST(Rewards, AccuracyMath) {
  const nlohmann::json half = {{"answer", "0.5"}};
  EXPECT_EQ(score("accuracy_math", input("<think>1/2</think> So \\boxed{\\frac{1}{2}}.", half)), 1);
  EXPECT_EQ(score("accuracy_math", input("<think>1/2</think> So \\boxed{\\frac{1}{3}}.", half)), 0);
  EXPECT_EQ(score("accuracy_math", input("<think>\\boxed{\\frac12}</think> I am not sure.", half)), 0);  // only after </think>
  EXPECT_EQ(score("accuracy_math", input("<answer>1/2</answer>", half)), 1);
  EXPECT_EQ(score("accuracy_math", input("The answer is 0.5.", half)), 1);
  EXPECT_EQ(score("accuracy_math", input("The answer is 0.5 or so", half)), 0);  // a hedge is not an answer
  EXPECT_EQ(score("accuracy_math", input("It is 0.5", half)), 0);  // no last-number fallback
  auto hedge = make_reward("accuracy_math", {}, nullptr)(input("\\boxed{0.5} or maybe \\boxed{0.6}", half));
  EXPECT_EQ(hedge.score, 0);
  EXPECT_EQ(hedge.reason, "several different boxed answers");
  EXPECT_EQ(score("accuracy_math", input("\\boxed{\\frac12}, i.e. \\boxed{0.5}", half)), 1);  // the same answer twice
  // The reference can be a worked solution.
  EXPECT_EQ(score("accuracy_math", input("\\boxed{7}", {{"solution", "3+4 = \\boxed{7}"}})), 1);
  expect_error([] { score("accuracy_math", input("\\boxed{7}")); }, "needs metadata 'answer'");
}

TEST(Rewards, AccuracyGsm8k) {
  const nlohmann::json sol = {{"answer", "48 / 2 = 24 clips in May.\n48 + 24 = 72\n#### 72"}};
  EXPECT_EQ(score("accuracy_gsm8k", input("She sold 72 in all.\n#### 72", sol)), 1);
  EXPECT_EQ(score("accuracy_gsm8k", input("\\boxed{72}", sol)), 1);
  EXPECT_EQ(score("accuracy_gsm8k", input("#### 71", sol)), 0);
}

TEST(Rewards, AccuracyBoxedCountsOnlyABoxedAnswer) {
  const nlohmann::json seven = {{"answer", "7"}};
  EXPECT_EQ(score("accuracy_boxed", input("3 + 4 = 7, so \\boxed{7}", seven)), 1);
  EXPECT_EQ(score("accuracy_boxed", input("<think>\\boxed{6}</think> \\boxed{7}", seven)), 1);
  EXPECT_EQ(score("accuracy_boxed", input("\\boxed{8}", seven)), 0);
  EXPECT_EQ(score("accuracy_boxed", input("\\boxed{7} or \\boxed{8}", seven)), 0);  // a hedge
  // What accuracy_math also takes is no answer here.
  EXPECT_EQ(score("accuracy_math", input("The answer is 7.", seven)), 1);
  EXPECT_EQ(score("accuracy_boxed", input("The answer is 7.", seven)), 0);
  EXPECT_EQ(score("accuracy_boxed", input("<answer>7</answer>", seven)), 0);
  EXPECT_EQ(score("accuracy_boxed", input("#### 7", seven)), 0);
}

TEST(Rewards, FormatBoxedAsksForAFilledBoxRightOrWrong) {
  const nlohmann::json seven = {{"answer", "7"}};
  EXPECT_EQ(score("format_boxed", input("3 + 4 = 7, so \\boxed{7}", seven)), 1);
  EXPECT_EQ(score("format_boxed", input("\\boxed{8}", seven)), 1);  // the format, not the value
  EXPECT_EQ(score("format_boxed", input("The answer is \\boxed{}.", seven)), 0);
  EXPECT_EQ(score("format_boxed", input("The answer is \\boxed{ }.", seven)), 0);
  EXPECT_EQ(score("format_boxed", input("The answer is 7.", seven)), 0);
  EXPECT_EQ(score("format_boxed", input("<think>\\boxed{7}</think> so 7", seven)), 0);  // only after the reasoning
}

TEST(Rewards, AnUnevaluatedExpressionIsNoAnswer) {
  // The hack SmolLM2 found under GRPO: box the question's own sum, which evaluates to the answer.
  const nlohmann::json six = {{"answer", "6"}};
  for (const char* name : {"accuracy_math", "accuracy_boxed", "accuracy_gsm8k"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(score(name, input("2 + 4 = 6\n\nThe answer is \\boxed{2 + 4}", six)), 0);
    EXPECT_EQ(score(name, input("\\boxed{2 \\times 3}", six)), 0);
    EXPECT_EQ(score(name, input("\\boxed{$(8) - (2)$}", six)), 0);
    EXPECT_EQ(score(name, input("\\boxed{1.5 \\cdot 4}", six)), 0);
    EXPECT_EQ(score(name, input("2 + 4 = 6, so \\boxed{6}", six)), 1);
    EXPECT_EQ(score(name, input("\\boxed{+6}", six)), 1);
  }
  EXPECT_EQ(make_reward("accuracy_math", {}, nullptr)(input("\\boxed{3+3}", six)).reason,
            "an unevaluated expression, not a final answer");
  EXPECT_EQ(score("accuracy_math", input("The answer is 2+4.", six)), 0);
  // Final answers that merely look like operations stay answers.
  EXPECT_EQ(score("accuracy_math", input("\\boxed{-3}", {{"answer", "-3"}})), 1);
  EXPECT_EQ(score("accuracy_math", input("\\boxed{\\frac{1}{2}}", {{"answer", "0.5"}})), 1);
  EXPECT_EQ(score("accuracy_math", input("\\boxed{1/2}", {{"answer", "0.5"}})), 1);
  EXPECT_EQ(score("accuracy_math", input("\\boxed{2\\sqrt{3} + 1}", {{"answer", "1 + 2\\sqrt{3}"}})), 1);
}

TEST(Rewards, AccuracyCode) {
  const nlohmann::json humaneval = {
      {"test", "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"},
      {"entry_point", "add"},
      {"code_prompt", "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n"}};
  EXPECT_EQ(score("accuracy_code", input("    return a + b\n", humaneval)), 1);
  EXPECT_EQ(score("accuracy_code", input("    return a - b\n", humaneval)), 0);
  // A completion that rewrites the whole function in a code block runs on its own.
  EXPECT_EQ(score("accuracy_code", input("Here:\n```python\ndef add(a, b):\n    return b + a\n```\n", humaneval)), 1);
  const nlohmann::json io = {{"tests", {{{"input", "2\n"}, {"output", "4\n"}}, {{"input", "3\n"}, {"output", "9\n"}}}}};
  EXPECT_EQ(score("accuracy_code", input("```python\nn = int(input())\nprint(n * n)\n```", io)), 1);
  EXPECT_EQ(score("accuracy_code", input("```python\nn = int(input())\nprint(n + n)\n```", io)), 0.5);
  expect_error([] { score("accuracy_code", input("x")); }, "needs metadata");
}

TEST(Rewards, FormatAndTags) {
  EXPECT_EQ(score("format_think", input("<think>\nhmm\n</think>\n<answer>\n5\n</answer>")), 1);
  EXPECT_EQ(score("format_think", input("<think>hmm</think> so \\boxed{5}")), 1);
  EXPECT_EQ(score("format_think", input("<think>a</think><think>b</think><answer>5</answer>")), 0);
  EXPECT_EQ(score("format_think", input("5 <think>hmm</think><answer>5</answer>")), 0);
  EXPECT_EQ(score("format_think", input("<think>hmm</think> five")), 0);
  EXPECT_EQ(score("format_think", input("<think>hmm")), 0);
  EXPECT_EQ(score("format_think", input("<answer>5</answer>")), 0);
  // The deepseek-r1 template opens <think> in the prompt.
  EXPECT_EQ(score("format_think", input("hmm</think>\n\\boxed{5}", {}, "<｜Assistant｜><think>\n")), 1);
  EXPECT_EQ(score("tag_count", input("<think>a</think><answer>5</answer>")), 1);
  EXPECT_EQ(score("tag_count", input("<think>a</think> 5")), 0.5);
  EXPECT_EQ(score("tag_count", input("<think>a<think></think></answer>")), 0.5);
}

TEST(Rewards, LanguageConsistency) {
  EXPECT_EQ(score("language_consistency", input("<think>add the two</think>2", {}, "What is 1 + 1?")), 1);
  // 4 Latin letters and 4 Han characters in the reasoning of an English prompt: 0.5.
  EXPECT_DOUBLE_EQ(score("language_consistency", input("<think>abcd 一二三四</think>", {}, "Add them")), 0.5);
  EXPECT_EQ(score("language_consistency", input("<think>一加一等于二</think>", {}, "一加一等于几？")), 1);
}

TEST(Rewards, LengthOverlong) {
  RewardOptions o;
  o.overlong_max_tokens = 100;
  o.overlong_cache_tokens = 20;
  auto at = [&](int n) { return score("length_overlong", input("x", {{"completion_tokens", n}}), o); };
  EXPECT_EQ(at(50), 0);
  EXPECT_EQ(at(80), 0);
  EXPECT_DOUBLE_EQ(at(90), -0.5);
  EXPECT_EQ(at(100), -1);
  EXPECT_EQ(at(150), -1);
}

TEST(Rewards, ExternalCommand) {
  RewardOptions o;
  o.external_command = {"python3", "-c",
                        "import json, sys; d = json.load(sys.stdin); "
                        "print(json.dumps({'score': len(d['completion']) / 10, 'reason': d['metadata']['tag']}))"};
  auto r = make_reward("external", o, nullptr)(input("12345", {{"tag", "hi"}}));
  EXPECT_DOUBLE_EQ(r.score, 0.5);
  EXPECT_EQ(r.reason, "hi");
  o.external_command = {"python3", "-c", "print('not json')"};
  EXPECT_EQ(make_reward("external", o, nullptr)(input("x")).score, 0);
  o.external_command = {"python3", "-c", "import time; time.sleep(30)"};
  o.external_timeout_s = 0.5;
  auto slow = make_reward("external", o, nullptr)(input("x"));
  EXPECT_EQ(slow.score, 0);
  EXPECT_NE(slow.reason.find("timeout"), std::string::npos);
  expect_error([] { make_reward("external", {}, nullptr); }, "--reward-command");
}

TEST(Rewards, WeightedSumsInParallel) {
  CombinedReward combined("accuracy_math:1,format_think:0.5,tag_count");
  std::vector<RewardInput> inputs;
  for (int i = 0; i < 40; ++i)
    inputs.push_back(input(i % 2 ? "<think>x</think><answer>0.5</answer>" : "\\boxed{0.5}", {{"answer", "1/2"}}));
  const auto batch = combined.score_batch(inputs, 4);
  for (size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_DOUBLE_EQ(batch[i].total, i % 2 ? 1 + 0.5 + 1 : 1 + 0 + 0);
    EXPECT_DOUBLE_EQ(batch[i].total, combined.score(inputs[i]).total);
  }
  EXPECT_EQ(batch[1].components.at("format_think").score, 1);
  expect_error([] { CombinedReward("accuracy_mathh"); }, "unknown reward 'accuracy_mathh'");
  expect_error([] { CombinedReward("accuracy_math:x"); }, "not a number");
  expect_error([] { CombinedReward(""); }, "empty");
}

}  // namespace
}  // namespace r1
