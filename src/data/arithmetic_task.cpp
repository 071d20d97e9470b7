#include "data/arithmetic_task.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "eval/problems.h"
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

// Each column's step ends with the digits of the result so far ("so 25"): the answer is then a
// copy of the last step, not digits gathered back from every step in reverse order. Without it a
// small model learns the columns long before it learns to assemble a 4-digit answer from them
// (seed 2 of the demo: 52% right when reasoning, the units digit of 1,000+ sums wrong).
std::string with_partial(const std::string& step, int64_t digit, std::string& so_far) {
  so_far.insert(so_far.begin(), static_cast<char>('0' + digit));
  return step + " so " + so_far;
}

// Column by column from the right: "d1+d2(+carry)=s so DIGITS" for each column.
std::string addition_steps(int64_t x, int64_t y) {
  std::string steps, so_far;
  int64_t carry = 0;
  while (x > 0 || y > 0 || carry > 0) {
    const int64_t dx = x % 10, dy = y % 10, s = dx + dy + carry;
    if (!steps.empty()) steps += ", ";
    steps += with_partial(std::to_string(dx) + "+" + std::to_string(dy) + (carry ? "+1" : "") + "=" + std::to_string(s),
                          s % 10, so_far);
    carry = s / 10;
    x /= 10;
    y /= 10;
  }
  return steps.empty() ? "0+0=0 so 0" : steps;
}

// Column by column from the right with borrows (x >= y): "12-5=7" borrows ten, the next column
// pays it back as "-1". The digits so far keep their leading zeros ("so 001" for 100-99).
std::string subtraction_steps(int64_t x, int64_t y) {
  std::string steps, so_far;
  int64_t borrow = 0;
  do {
    const int64_t dx = x % 10, dy = y % 10;
    const bool lend = dx - dy - borrow < 0;
    const int64_t top = lend ? dx + 10 : dx, digit = top - dy - borrow;
    if (!steps.empty()) steps += ", ";
    steps += with_partial(std::to_string(top) + "-" + std::to_string(dy) + (borrow ? "-1" : "") + "=" +
                              std::to_string(digit),
                          digit, so_far);
    borrow = lend;
    x /= 10;
    y /= 10;
  } while (x > 0 || y > 0);
  return steps;
}

// x times the digit d, column by column: "7*4(+carry)=s"; the last column's result is written whole.
std::string multiplication_steps(int64_t x, int64_t d) {
  std::string steps, so_far;
  int64_t carry = 0;
  do {
    const int64_t dx = x % 10, s = dx * d + carry;
    if (!steps.empty()) steps += ", ";
    const std::string step = std::to_string(dx) + "*" + std::to_string(d) + (carry ? "+" + std::to_string(carry) : "") +
                             "=" + std::to_string(s);
    carry = s / 10;
    x /= 10;
    if (x > 0) steps += with_partial(step, s % 10, so_far);
    else steps += step + " so " + std::to_string(s) + so_far;  // the last column's result whole
  } while (x > 0);
  return steps;
}

}  // namespace

int64_t ArithmeticProblem::answer() const {
  if (op == "sub") return a - b;
  if (op == "mul") return a * b;
  if (op == "chain") return a + b - c;
  return a + b;
}

namespace {

int column_carries(int64_t a, int64_t b) {  // of a + b
  int n = 0;
  for (int64_t carry = 0; a > 0 || b > 0; a /= 10, b /= 10) n += static_cast<int>(carry = (a % 10 + b % 10 + carry) >= 10);
  return n;
}

int column_borrows(int64_t a, int64_t b) {  // of a - b, a >= b
  int n = 0;
  for (int64_t borrow = 0; a > 0 || b > 0; a /= 10, b /= 10) n += static_cast<int>(borrow = (a % 10 - b % 10 - borrow) < 0);
  return n;
}

int multiplication_carries(int64_t a, int64_t b) {  // of a * b, b one digit
  int n = 0;
  for (int64_t carry = 0; a > 0; a /= 10) {
    carry = (a % 10 * b + carry) / 10;
    n += carry > 0;
  }
  return n;
}

}  // namespace

int ArithmeticProblem::carries() const {
  if (op == "sub") return column_borrows(a, b);
  if (op == "mul") return multiplication_carries(a, b);
  if (op == "chain") return column_carries(a, b) + column_borrows(a + b, c);
  return column_carries(a, b);
}

std::string ArithmeticProblem::prompt() const {
  const std::string sa = std::to_string(a), sb = std::to_string(b);
  if (op == "sub") return "Q: " + sa + "-" + sb + "=? A:";
  if (op == "mul") return "Q: " + sa + "*" + sb + "=? A:";
  if (op == "chain") return "Q: " + sa + "+" + sb + "-" + std::to_string(c) + "=? A:";
  return "Q: " + sa + "+" + sb + "=? A:";
}

std::string ArithmeticProblem::question() const {
  const std::string sa = std::to_string(a), sb = std::to_string(b);
  if (op == "sub") return "What is " + sa + " - " + sb + "?";
  if (op == "mul") return "What is " + sa + " times " + sb + "?";
  if (op == "chain") return "What is " + sa + " + " + sb + " - " + std::to_string(c) + "?";
  return "What is " + sa + " + " + sb + "?";
}

std::string ArithmeticProblem::bare_answer() const { return " <answer>" + std::to_string(answer()) + "</answer>"; }

std::string ArithmeticProblem::worked_answer() const {
  std::string steps;
  if (op == "sub") steps = subtraction_steps(a, b);
  else if (op == "mul") steps = multiplication_steps(a, b);
  else if (op == "chain")  // one operation at a time, each worked column by column
    steps = std::to_string(a) + "+" + std::to_string(b) + ": " + addition_steps(a, b) + "; " +
            std::to_string(a + b) + "-" + std::to_string(c) + ": " + subtraction_steps(a + b, c);
  else steps = addition_steps(a, b);
  return " <think>" + steps + "</think>" + bare_answer();
}

std::string arithmetic_prompt(int64_t a, int64_t b) { return ArithmeticProblem{"add", a, b}.prompt(); }
std::string arithmetic_worked_answer(int64_t a, int64_t b) { return ArithmeticProblem{"add", a, b}.worked_answer(); }

ArithmeticTaskSummary write_arithmetic_task(const std::string& dir, const ArithmeticTaskOptions& o) {
  if (o.min_digits < 1 || o.max_digits < o.min_digits || o.max_digits > 9 || o.test_digits < 1 || o.test_digits > 9)
    throw Error("arithmetic task: digits must satisfy 1 <= min <= max <= 9");
  if (!(o.think_fraction >= 0 && o.think_fraction <= 1)) throw Error("arithmetic task: --think-fraction must be in [0, 1]");
  if (o.ops.empty()) throw Error("arithmetic task: --ops needs at least one of add, sub, mul, chain");
  if (o.test_min_carries < 0 || o.test_min_carries > o.test_digits + 1)
    throw Error("arithmetic task: --test-min-carries must be between 0 and the test digits + 1");
  if (o.style != "qa" && o.style != "chat") throw Error("arithmetic task: --style must be qa or chat, got '" + o.style + "'");
  for (const auto& op : o.ops)
    if (op != "add" && op != "sub" && op != "mul" && op != "chain")
      throw Error("arithmetic task: unknown op '" + op + "' (expected add, sub, mul, chain)");
  std::filesystem::create_directories(dir);
  std::mt19937_64 rng(o.seed * 0x9e3779b97f4a7c15ull + 17);
  // One problem, operand sizes from `digits` (called once per operand, in order). With one op no
  // draw picks it, so an addition-only task is the same random stream as before ops existed.
  auto make = [&](const std::function<int()>& digits) {
    ArithmeticProblem p;
    p.op = o.ops.size() == 1 ? o.ops[0] : o.ops[std::uniform_int_distribution<size_t>(0, o.ops.size() - 1)(rng)];
    p.a = draw(rng, digits());
    p.b = draw(rng, p.op == "mul" ? 1 : digits());
    if (p.op == "sub" && p.a < p.b) std::swap(p.a, p.b);
    if (p.op == "chain") p.c = std::min(draw(rng, digits()), p.a + p.b);
    return p;
  };
  // Held-out problems first, so nothing else may use them.
  std::set<std::string> held_out;
  std::vector<ArithmeticProblem> test;
  for (int64_t tries = 0; static_cast<int64_t>(test.size()) < o.test_problems && tries < o.test_problems * 1000; ++tries) {
    const ArithmeticProblem p = make([&] { return o.test_digits; });
    if (p.carries() >= o.test_min_carries && held_out.insert(p.prompt()).second) test.push_back(p);
  }
  auto fresh = [&] {
    // Small operand sizes have few problems (155 one-digit sums and differences): when the held-out
    // set takes them all, say so instead of drawing forever.
    for (int64_t tries = 0; tries < 1000000; ++tries) {
      std::uniform_int_distribution<int> digits(o.min_digits, o.max_digits);
      const ArithmeticProblem p = make([&] { return digits(rng); });
      if (!held_out.count(p.prompt())) return p;
    }
    throw Error("arithmetic task: the " + std::to_string(test.size()) + " held-out problems leave none of these "
                "sizes to train on; lower --test-problems or raise --max-digits");
  };
  ArithmeticTaskSummary s;
  {
    std::ofstream corpus(dir + "/corpus.jsonl");
    std::bernoulli_distribution think(o.think_fraction);
    for (int64_t i = 0; i < o.corpus_documents; ++i) {
      const ArithmeticProblem p = fresh();
      const bool reasons = think(rng);
      corpus << nlohmann::json{{"text", p.prompt() + (reasons ? p.worked_answer() : p.bare_answer())}}.dump() << "\n";
      s.think_documents += reasons;
    }
    s.corpus_documents = o.corpus_documents;
  }
  auto write_problems = [&](const std::string& path, const std::vector<ArithmeticProblem>& problems) {
    std::ofstream out(path);
    for (const auto& p : problems) {
      nlohmann::json row = {{"prompt", p.prompt()}, {"answer", std::to_string(p.answer())}, {"op", p.op}};
      if (o.style == "chat") {
        row["question"] = p.question();
        row["prompt"] = p.question() + "\n" + kMathInstruction;
      }
      out << row.dump() << "\n";
    }
  };
  std::vector<ArithmeticProblem> train;
  for (int64_t i = 0; i < o.train_problems; ++i) train.push_back(fresh());
  write_problems(dir + "/train.jsonl", train);
  write_problems(dir + "/test.jsonl", test);
  s.train_problems = static_cast<int64_t>(train.size());
  s.test_problems = static_cast<int64_t>(test.size());
  return s;
}

}  // namespace r1
