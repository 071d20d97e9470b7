#include "data/arithmetic_task.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace r1 {
namespace {

int64_t power10(int d) {
  int64_t p = 1;
  while (d-- > 0) p *= 10;
  return p;
}

// A number with exactly `digits` digits (0 allowed for one digit).
int64_t draw(std::mt19937_64& rng, int digits) {
  const int64_t lo = digits == 1 ? 0 : power10(digits - 1);
  return std::uniform_int_distribution<int64_t>(lo, power10(digits) - 1)(rng);
}

}  // namespace

std::string arithmetic_prompt(int64_t a, int64_t b) { return "Q: " + std::to_string(a) + "+" + std::to_string(b) + "=? A:"; }

std::string arithmetic_worked_answer(int64_t a, int64_t b) {
  // Column by column from the right: "d1+d2(+carry)=s" for each column.
  std::string steps;
  int64_t x = a, y = b, carry = 0;
  while (x > 0 || y > 0 || carry > 0) {
    const int64_t dx = x % 10, dy = y % 10, s = dx + dy + carry;
    if (!steps.empty()) steps += ", ";
    steps += std::to_string(dx) + "+" + std::to_string(dy) + (carry ? "+1" : "") + "=" + std::to_string(s);
    carry = s / 10;
    x /= 10;
    y /= 10;
  }
  if (steps.empty()) steps = "0+0=0";
  return " <think>" + steps + "</think> <answer>" + std::to_string(a + b) + "</answer>";
}

ArithmeticTaskSummary write_arithmetic_task(const std::string& dir, const ArithmeticTaskOptions& o) {
  if (o.min_digits < 1 || o.max_digits < o.min_digits || o.max_digits > 9 || o.test_digits < 1 || o.test_digits > 9)
    throw Error("arithmetic task: digits must satisfy 1 <= min <= max <= 9");
  if (!(o.think_fraction >= 0 && o.think_fraction <= 1)) throw Error("arithmetic task: --think-fraction must be in [0, 1]");
  std::filesystem::create_directories(dir);
  std::mt19937_64 rng(o.seed * 0x9e3779b97f4a7c15ull + 17);
  // Held-out problems first, so nothing else may use them.
  std::set<std::pair<int64_t, int64_t>> held_out;
  std::vector<std::pair<int64_t, int64_t>> test;
  for (int64_t tries = 0; static_cast<int64_t>(test.size()) < o.test_problems && tries < o.test_problems * 100; ++tries) {
    const std::pair<int64_t, int64_t> p{draw(rng, o.test_digits), draw(rng, o.test_digits)};
    if (held_out.insert(p).second) test.push_back(p);
  }
  auto fresh = [&] {
    for (;;) {
      std::uniform_int_distribution<int> digits(o.min_digits, o.max_digits);
      const std::pair<int64_t, int64_t> p{draw(rng, digits(rng)), draw(rng, digits(rng))};
      if (!held_out.count(p)) return p;
    }
  };
  ArithmeticTaskSummary s;
  {
    std::ofstream corpus(dir + "/corpus.jsonl");
    std::bernoulli_distribution think(o.think_fraction);
    for (int64_t i = 0; i < o.corpus_documents; ++i) {
      const auto [a, b] = fresh();
      const bool reasons = think(rng);
      const std::string text = arithmetic_prompt(a, b) + (reasons ? arithmetic_worked_answer(a, b)
                                                                   : " <answer>" + std::to_string(a + b) + "</answer>");
      corpus << nlohmann::json{{"text", text}}.dump() << "\n";
      s.think_documents += reasons;
    }
    s.corpus_documents = o.corpus_documents;
  }
  auto write_problems = [&](const std::string& path, const std::vector<std::pair<int64_t, int64_t>>& problems) {
    std::ofstream out(path);
    for (const auto& [a, b] : problems)
      out << nlohmann::json{{"prompt", arithmetic_prompt(a, b)}, {"answer", std::to_string(a + b)}}.dump() << "\n";
  };
  std::vector<std::pair<int64_t, int64_t>> train;
  for (int64_t i = 0; i < o.train_problems; ++i) train.push_back(fresh());
  write_problems(dir + "/train.jsonl", train);
  write_problems(dir + "/test.jsonl", test);
  s.train_problems = static_cast<int64_t>(train.size());
  s.test_problems = static_cast<int64_t>(test.size());
  return s;
}

}  // namespace r1
