// The built-in arithmetic task: worked answers are right, held-out problems never leak into the
// corpus or the training problems, the reasoning share is as asked, and a seed fixes everything.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "data/arithmetic_task.h"
#include "rewards/rewards.h"

namespace r1 {
namespace {

std::vector<std::string> lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(ArithmeticTask, WorkedAnswersAreRightAndFormatted) {
  EXPECT_EQ(arithmetic_prompt(468, 57), "Q: 468+57=? A:");
  EXPECT_EQ(arithmetic_worked_answer(468, 57), " <think>8+7=15, 6+5+1=12, 4+0+1=5</think> <answer>525</answer>");
  EXPECT_EQ(arithmetic_worked_answer(95, 5), " <think>5+5=10, 9+0+1=10, 0+0+1=1</think> <answer>100</answer>");
  // The task's own rewards accept every worked answer.
  auto accuracy = make_reward("accuracy_math", {}, nullptr);
  auto format = make_reward("format_think", {}, nullptr);
  for (int a : {0, 7, 99, 123, 999})
    for (int b : {0, 1, 58, 901}) {
      const RewardInput in{arithmetic_prompt(a, b), arithmetic_worked_answer(a, b), {{"answer", std::to_string(a + b)}}};
      EXPECT_EQ(accuracy(in).score, 1) << a << "+" << b;
      EXPECT_EQ(format(in).score, 1) << a << "+" << b;
    }
}

TEST(ArithmeticTask, HeldOutProblemsNeverLeakAndSeedsReproduce) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / ("arith_" + std::to_string(::getpid()));
  ArithmeticTaskOptions o;
  o.seed = 3;
  o.corpus_documents = 3000;
  o.train_problems = 500;
  o.test_problems = 100;
  const auto s = write_arithmetic_task((dir / "a").string(), o);
  EXPECT_EQ(s.test_problems, 100);
  EXPECT_NEAR(static_cast<double>(s.think_documents) / s.corpus_documents, 0.3, 0.03);
  std::set<std::string> test;
  for (const auto& l : lines((dir / "a" / "test.jsonl").string()))
    test.insert(nlohmann::json::parse(l)["prompt"].get<std::string>());
  EXPECT_EQ(test.size(), 100u);
  for (const auto& l : lines((dir / "a" / "train.jsonl").string()))
    EXPECT_FALSE(test.count(nlohmann::json::parse(l)["prompt"].get<std::string>()));
  for (const auto& l : lines((dir / "a" / "corpus.jsonl").string())) {
    const std::string text = nlohmann::json::parse(l)["text"];
    EXPECT_FALSE(test.count(text.substr(0, text.find(" A:") + 3))) << text;
  }
  write_arithmetic_task((dir / "b").string(), o);
  EXPECT_EQ(lines((dir / "a" / "corpus.jsonl").string()), lines((dir / "b" / "corpus.jsonl").string()));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace r1
