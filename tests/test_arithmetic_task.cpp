// The built-in arithmetic task: worked answers are right, held-out problems never leak into the
// corpus or the training problems, the reasoning share is as asked, and a seed fixes everything.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <cstdio>
#include <map>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "data/arithmetic_task.h"
#include "util/error.h"
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
  EXPECT_EQ(arithmetic_worked_answer(468, 57), " <think>8+7=15 so 5, 6+5+1=12 so 25, 4+0+1=5 so 525</think> <answer>525</answer>");
  EXPECT_EQ(arithmetic_worked_answer(95, 5), " <think>5+5=10 so 0, 9+0+1=10 so 00, 0+0+1=1 so 100</think> <answer>100</answer>");
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

TEST(ArithmeticTask, SubtractionMultiplicationAndChainsAreWorkedRight) {
  EXPECT_EQ((ArithmeticProblem{"sub", 503, 127}.worked_answer()),
            " <think>13-7=6 so 6, 10-2-1=7 so 76, 5-1-1=3 so 376</think> <answer>376</answer>");
  EXPECT_EQ((ArithmeticProblem{"sub", 100, 99}.worked_answer()),
            " <think>10-9=1 so 1, 10-9-1=0 so 01, 1-0-1=0 so 001</think> <answer>1</answer>");
  EXPECT_EQ((ArithmeticProblem{"mul", 347, 6}.worked_answer()), " <think>7*6=42 so 2, 4*6+4=28 so 82, 3*6+2=20 so 2082</think> <answer>2082</answer>");
  EXPECT_EQ((ArithmeticProblem{"chain", 12, 7, 5}.prompt()), "Q: 12+7-5=? A:");
  EXPECT_EQ((ArithmeticProblem{"chain", 12, 7, 5}.worked_answer()),
            " <think>12+7: 2+7=9 so 9, 1+0=1 so 19; 19-5: 9-5=4 so 4, 1-0=1 so 14</think> <answer>14</answer>");
  EXPECT_EQ((ArithmeticProblem{"mul", 58, 3}.prompt()), "Q: 58*3=? A:");
}

// The trace's last "so DIGITS" is the answer (leading zeros aside), for every op and size: the
// model copies it into <answer>, so a wrong running result would teach a wrong answer.
TEST(ArithmeticTask, TheLastRunningResultIsTheAnswer) {
  std::mt19937_64 rng(3);
  for (const std::string op : {"add", "sub", "mul", "chain"})
    for (int i = 0; i < 500; ++i) {
      ArithmeticProblem p{op, static_cast<int64_t>(rng() % 100000), static_cast<int64_t>(rng() % 1000),
                          static_cast<int64_t>(rng() % 100)};
      if (op == "mul") p.b %= 10;
      if (op == "sub" && p.a < p.b) std::swap(p.a, p.b);
      if (op == "chain") p.c = std::min(p.c, p.a + p.b);
      const std::string w = p.worked_answer();
      const size_t end = w.find("</think>"), so = w.rfind(" so ", end);
      ASSERT_NE(so, std::string::npos) << w;
      const std::string digits = w.substr(so + 4, end - so - 4);
      ASSERT_FALSE(digits.empty()) << w;
      EXPECT_EQ(std::stoll(digits), p.answer()) << w;
    }
}

TEST(ArithmeticTask, EveryOpInTheFilesIsRightAndMixed) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / ("arith_ops_" + std::to_string(::getpid()));
  ArithmeticTaskOptions o;
  o.seed = 5;
  o.ops = {"add", "sub", "mul", "chain"};
  o.corpus_documents = 2000;
  o.train_problems = 400;
  o.test_problems = 200;
  write_arithmetic_task(dir.string(), o);
  auto accuracy = make_reward("accuracy_math", {}, nullptr);
  // The answer recomputed from the prompt text alone: "Q: A op B [op C]=? A:".
  auto solve = [](const std::string& prompt) {
    long long x = 0, y = 0, z = 0;
    char op1 = 0, op2 = 0;
    const int n = std::sscanf(prompt.c_str() + 3, "%lld%c%lld%c%lld", &x, &op1, &y, &op2, &z);
    long long want = op1 == '+' ? x + y : op1 == '-' ? x - y : x * y;
    if (n == 5 && op2 == '-') want -= z;
    return want;
  };
  std::map<std::string, int> per_op;
  for (const auto& l : lines((dir / "test.jsonl").string())) {
    const auto j = nlohmann::json::parse(l);
    const std::string q = j["prompt"];
    const long long want = solve(q);
    EXPECT_EQ(j["answer"].get<std::string>(), std::to_string(want)) << q;
    EXPECT_GE(want, 0) << q;
    ++per_op[j["op"].get<std::string>()];
  }
  EXPECT_EQ(per_op.size(), 4u);
  for (const auto& [op, count] : per_op) EXPECT_GT(count, 25) << op;
  int checked = 0;
  for (const auto& l : lines((dir / "corpus.jsonl").string())) {
    const std::string text = nlohmann::json::parse(l)["text"];
    const size_t cut = text.find(" A:") + 3;
    const RewardInput in{text.substr(0, cut), text.substr(cut), {{"answer", std::to_string(solve(text))}}};
    EXPECT_EQ(accuracy(in).score, 1) << text;
    ++checked;
  }
  EXPECT_EQ(checked, 2000);
  fs::remove_all(dir);
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

TEST(ArithmeticTask, HeldOutProblemsCanRequireCarries) {
  // Carries counted by hand: 468+433 carries twice (8+3, 6+3+1), 999+1 three times, 123+456 never;
  // 503-127 borrows twice, 347*6 carries three times (7*6, 4*6+4, 3*6+2).
  EXPECT_EQ((ArithmeticProblem{"add", 468, 433}.carries()), 2);
  EXPECT_EQ((ArithmeticProblem{"add", 999, 1}.carries()), 3);
  EXPECT_EQ((ArithmeticProblem{"add", 123, 456}.carries()), 0);
  EXPECT_EQ((ArithmeticProblem{"sub", 503, 127}.carries()), 2);
  EXPECT_EQ((ArithmeticProblem{"mul", 347, 6}.carries()), 3);
  EXPECT_EQ((ArithmeticProblem{"chain", 12, 7, 5}.carries()), 0);
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / ("arith_carries_" + std::to_string(::getpid()));
  ArithmeticTaskOptions o;
  o.corpus_documents = 100;
  o.train_problems = 10;
  o.test_problems = 200;
  o.test_min_carries = 2;
  write_arithmetic_task(dir.string(), o);
  int problems = 0;
  for (const auto& l : lines((dir / "test.jsonl").string())) {
    const std::string q = nlohmann::json::parse(l)["prompt"];
    const size_t plus = q.find('+');
    const int64_t a = std::stoll(q.substr(3, plus - 3)), b = std::stoll(q.substr(plus + 1));
    int carries = 0;  // recounted from the sum's digits: a column carries when its digits and carry reach 10
    for (int64_t x = a, y = b, c = 0; x > 0 || y > 0; x /= 10, y /= 10) carries += static_cast<int>(c = (x % 10 + y % 10 + c) >= 10);
    EXPECT_GE(carries, 2) << q;
    ++problems;
  }
  EXPECT_EQ(problems, 200);
  o.test_min_carries = 5;  // more than 3-digit operands can carry
  EXPECT_THROW(write_arithmetic_task(dir.string(), o), Error);
  fs::remove_all(dir);
}

}  // namespace
TEST(ArithmeticTask, ChatStyleAndATaskWithNothingLeftToTrainOn) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / ("arith_chat_" + std::to_string(::getpid()));
  ArithmeticTaskOptions o;
  o.style = "chat";
  o.ops = {"add", "sub"};
  o.min_digits = o.max_digits = o.test_digits = 1;
  o.corpus_documents = 0;
  o.train_problems = 20;
  o.test_problems = 64;
  write_arithmetic_task(dir.string(), o);
  for (const auto& l : lines((dir / "train.jsonl").string())) {
    const auto row = nlohmann::json::parse(l);
    const std::string q = row["question"];
    EXPECT_EQ(q.rfind("What is ", 0), 0u) << q;
    EXPECT_EQ(row["prompt"].get<std::string>(), q + "\nPlease reason step by step, and put your final answer within \\boxed{}.");
  }
  // 100 one-digit sums and 55 differences: holding out 200 leaves nothing to train on, an error, not a hang.
  o.test_problems = 200;
  try {
    write_arithmetic_task((dir / "all").string(), o);
    ADD_FAILURE() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("lower --test-problems"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace r1
