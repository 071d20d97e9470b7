// The math answer checker on real data (MATH-500, GSM8K), on mutated answers that must be
// rejected, on a table of hand-written cases covering every rule, and on hostile inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <chrono>
#include <thread>
#include <fstream>

#include <nlohmann/json.hpp>

#include "rewards/answer_extraction.h"
#include "rewards/math_verifier.h"
#include "test_data_dir.h"

namespace r1 {
namespace {

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::vector<nlohmann::json> rows;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

TEST(MathVerifier, Math500SolutionsBoxTheirAnswers) {
  const auto rows = read_jsonl(testing::test_data() + "/math500/test.jsonl");
  ASSERT_EQ(rows.size(), 500u);
  int equal = 0;
  std::string misses;
  for (const auto& r : rows) {
    const auto extracted = extract_answer(r["solution"].get<std::string>());
    const auto verdict = math_equal(extracted.text, r["answer"].get<std::string>());
    if (verdict.equal) ++equal;
    else misses += "  " + r["unique_id"].get<std::string>() + ": boxed '" + extracted.text + "' vs '" +
                   r["answer"].get<std::string>() + "' (" + verdict.reason + ")\n";
  }
  EXPECT_GE(equal, 495) << misses;
  std::cout << equal << "/500 equal; misses:\n" << misses;
}

// Mutations of a reference answer that change its value: must be rejected.
std::vector<std::string> mutations(const std::string& answer) {
  std::vector<std::string> out;
  // Change the first digit.
  for (size_t i = 0; i < answer.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(answer[i]))) {
      std::string m = answer;
      m[i] = static_cast<char>('0' + (answer[i] - '0' + 1) % 10);
      out.push_back(m);
      break;
    }
  }
  // Flip the sign (not of 0).
  const std::string norm = normalize_math_answer(answer);
  if (norm != "0" && norm.find(',') == std::string::npos && norm.find('=') == std::string::npos &&
      norm.find("\\in") == std::string::npos && norm.find("\\pm") == std::string::npos)
    out.push_back(answer[0] == '-' ? answer.substr(1) : "-(" + answer + ")");
  // Drop the last term of a sum.
  const size_t plus = answer.rfind('+');
  if (plus != std::string::npos && plus > 0 && answer.find('(') == std::string::npos && answer.find('{') == std::string::npos)
    out.push_back(answer.substr(0, plus));
  // Swap the ends of an interval or a pair.
  if (answer.size() > 4 && (answer[0] == '(' || answer[0] == '[') && answer.find(',') != std::string::npos &&
      std::count(answer.begin(), answer.end(), ',') == 1 && answer.find("\\cup") == std::string::npos) {
    const size_t comma = answer.find(',');
    const std::string left = answer.substr(1, comma - 1), right = answer.substr(comma + 1, answer.size() - comma - 2);
    if (normalize_math_answer(left) != normalize_math_answer(right))
      out.push_back(answer.substr(0, 1) + right + "," + left + answer.substr(answer.size() - 1));
  }
  return out;
}

TEST(MathVerifier, MutatedMath500AnswersAreRejected) {
  const auto rows = read_jsonl(testing::test_data() + "/math500/test.jsonl");
  int total = 0, rejected = 0;
  std::string accepted;
  for (const auto& r : rows) {
    const std::string answer = r["answer"].get<std::string>();
    for (const auto& m : mutations(answer)) {
      ++total;
      const auto v = math_equal(m, answer);
      if (!v.equal) ++rejected;
      else accepted += "  '" + m + "' accepted for '" + answer + "' (" + v.reason + ")\n";
    }
  }
  EXPECT_GT(total, 900);
  EXPECT_GE(rejected, total * 0.995) << accepted;
  std::cout << rejected << "/" << total << " mutations rejected\n" << accepted;
}

TEST(MathVerifier, Gsm8kAnswersInTheirEquivalentForms) {
  const auto rows = read_jsonl(testing::test_data() + "/gsm8k/test.jsonl");
  ASSERT_EQ(rows.size(), 1319u);
  int checked = 0;
  for (const auto& r : rows) {
    const auto extracted = extract_answer(r["answer"].get<std::string>());
    ASSERT_EQ(extracted.source, "gsm8k");
    const std::string written = extracted.text;  // e.g. "18", "1,200", "-3", "0.5"
    std::string n = written;
    n.erase(std::remove(n.begin(), n.end(), ','), n.end());
    EXPECT_TRUE(math_equal(written, n).equal) << written;
    // The same number with thousands separators: 1234567.5 -> 1,234,567.5.
    const size_t dot = std::min(n.find('.'), n.size());
    const size_t sign = n[0] == '-' ? 1 : 0;
    std::string with_commas = n.substr(0, sign);
    for (size_t i = sign; i < dot; ++i) {
      with_commas += n[i];
      if ((dot - i - 1) % 3 == 0 && i + 1 < dot) with_commas += ',';
    }
    with_commas += n.substr(dot);
    std::vector<std::string> forms = {n, with_commas};
    forms.push_back("\\boxed{" + n + "}");
    forms.push_back("$" + n);
    forms.push_back("\\$" + n);
    forms.push_back(n + ".00");
    forms.push_back("The answer is " + n + ".");
    for (const std::string& form : forms) {
      const auto got = extract_answer(form);
      const auto v = math_equal(got.found() ? got.text : form, n);
      EXPECT_TRUE(v.equal) << "'" << form << "' vs " << n << ": " << v.reason;
    }
    EXPECT_FALSE(math_equal(n + "1", n).equal) << n;
    ++checked;
  }
  EXPECT_EQ(checked, 1319);
}

// Hand-written cases by rule, in tests/data/math_equivalence_cases.jsonl (shared with the
// math-verify comparison, tests/python/test_math_verify_agreement.py).
TEST(MathVerifier, HandWrittenCasesCoverEveryRule) {
  const auto cases = read_jsonl(r1::testing::source_test_data() + "/math_equivalence_cases.jsonl");
  EXPECT_GE(cases.size(), 200u);
  int wrong = 0;
  for (const auto& c : cases) {
    const std::string answer = c["answer"], reference = c["reference"];
    const bool equal = c["equal"];
    const auto v = math_equal(answer, reference);
    if (v.equal != equal) {
      ++wrong;
      ADD_FAILURE() << c["rule"].get<std::string>() << ": '" << answer << "' vs '" << reference << "': got " << v.equal
                    << " (" << v.reason << ")";
    }
    EXPECT_EQ(math_equal(reference, answer).equal, equal) << "reversed: '" << reference << "' vs '" << answer << "'";
  }
  std::cout << cases.size() << " cases, " << wrong << " wrong\n";
}

TEST(MathVerifier, HostileInputsAreBoundedAndRejected) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(math_equal("9^{9^{9^9}}", "1").equal);
  EXPECT_EQ(math_equal("9^{9^{9^9}}", "1").reason.rfind("too large", 0), 0u);
  EXPECT_FALSE(math_equal("(x+1)^{100000}", "x").equal);
  EXPECT_FALSE(math_equal("100000!", "1").equal);
  EXPECT_FALSE(math_equal(std::string(10 << 20, '9'), "9").equal);
  EXPECT_EQ(math_equal(std::string(10 << 20, '9'), "9").reason, "too long");
  EXPECT_FALSE(math_equal(std::string(150, '(') + "1" + std::string(150, ')'), "1").equal);
  EXPECT_FALSE(math_equal("\\frac{\\frac{\\frac{1}{0}}{0}}{0}", "0").equal);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 2.0);
  // The time limit itself: with none left, an expression check stops.
  MathVerifyOptions no_time;
  no_time.time_limit_s = 0;
  EXPECT_EQ(math_equal("x^2 + 1", "1 + x^2 + 0", no_time).reason, "too large: time limit");
}

TEST(MathVerifier, EachCheckIsBoundedInTimeAndMemoryAndDoesNotStallTheOthers) {
  // Each of these runs for seconds to minutes and gigabytes if left alone (the tower of powers
  // builds a 4096^3 * log10(9)-digit number).
  const std::vector<std::string> pathological = {"((9^{4096})^{4096})^{4096}", "(((9^{4096})^{4096})^{4096})^{4096}",
                                                 "((1000!)^{4096})^{4096}", "\\frac{(9^{4096})^{4096}}{(8^{4096})^{4096}}"};
  std::atomic<bool> slow_done{false};
  std::vector<double> slow_seconds(pathological.size());
  std::vector<MathVerdict> slow_verdicts(pathological.size());
  std::thread slow([&] {
    for (size_t i = 0; i < pathological.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      slow_verdicts[i] = math_equal(pathological[i], "1");
      slow_seconds[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    slow_done = true;
  });
  // Meanwhile, ordinary checks on this thread go on at their usual pace.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto t0 = std::chrono::steady_clock::now();
  int right = 0;
  for (int i = 0; i < 200; ++i) right += math_equal("\\frac{" + std::to_string(i + 1) + "}{2}", std::to_string(0.5 * (i + 1))).equal;
  const double ordinary = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  slow.join();
  EXPECT_EQ(right, 200);
  EXPECT_LT(ordinary, 1.0) << "200 ordinary checks waited for the pathological ones";
  for (size_t i = 0; i < pathological.size(); ++i) {
    EXPECT_FALSE(slow_verdicts[i].equal) << pathological[i];
    EXPECT_EQ(slow_verdicts[i].reason.rfind("too large", 0), 0u) << pathological[i] << ": " << slow_verdicts[i].reason;
    EXPECT_LT(slow_seconds[i], 1.3) << pathological[i];
  }
  EXPECT_LE(math_checker_stats().peak_worker_rss_bytes, MathVerifyOptions{}.memory_bytes);
}

TEST(AnswerExtraction, FormsAndConflicts) {
  EXPECT_EQ(extract_answer("so \\boxed{\\frac{1}{2}} is it").text, "\\frac{1}{2}");
  EXPECT_EQ(extract_answer("nested \\boxed{\\{1, \\{2\\}\\}} and \\boxed{x^{2}}").text, "x^{2}");
  EXPECT_EQ(extract_answer("brace-less $\\boxed 5$.").text, "5");
  EXPECT_EQ(extract_answer("\\fbox{7}").text, "7");
  EXPECT_EQ(extract_answer("<think>hmm</think><answer> 12 </answer>").text, "12");
  EXPECT_EQ(extract_answer("<answer>\\boxed{3}</answer>").text, "3");
  EXPECT_EQ(extract_answer("Natalia sold 72 clips.\n#### 72").text, "72");
  EXPECT_EQ(extract_answer("Thus, the final answer is $\\frac{3}{4}$. I hope").text, "\\frac{3}{4}");
  EXPECT_EQ(extract_answer("The answer is: 17").text, "17");
  EXPECT_FALSE(extract_answer("I think it's 5 or 6").found());  // no last-number fallback by default
  ExtractOptions fallback;
  fallback.last_number = true;
  EXPECT_EQ(extract_answer("I think it's 5 or 6,000.", fallback).text, "6,000");
  EXPECT_EQ(extract_answer("unclosed \\boxed{5").source, "none");
  const auto two = extract_answer("\\boxed{2} then \\boxed{3}");
  EXPECT_EQ(two.all_boxed, (std::vector<std::string>{"2", "3"}));
}

}  // namespace
}  // namespace r1
