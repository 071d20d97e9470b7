// The math answer checker on real data (MATH-500, GSM8K), on mutated answers that must be
// rejected, on a table of hand-written cases covering every rule, and on hostile inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>

#include <nlohmann/json.hpp>

#include "rewards/answer_extraction.h"
#include "rewards/math_verifier.h"
#include "shared_data.h"

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
  const auto rows = read_jsonl(testing::shared_data() + "/math500/test.jsonl");
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
  const auto rows = read_jsonl(testing::shared_data() + "/math500/test.jsonl");
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
  const auto rows = read_jsonl(testing::shared_data() + "/gsm8k/test.jsonl");
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

struct Case {
  const char* answer;
  const char* reference;
  bool equal;
};

// Hand-written cases, by rule; each line is a case the checker must get right.
const Case kCases[] = {
    // Exact strings and spacing.
    {"42", "42", true}, {" 42 ", "42", true}, {"x^2+1", "x^2 + 1", true}, {"42", "43", false},
    // Fractions, \dfrac, \tfrac, brace-less \frac.
    {"\\frac{1}{2}", "0.5", true}, {"\\dfrac{3}{4}", "\\frac{3}{4}", true}, {"\\tfrac12", "\\frac{1}{2}", true},
    {"\\frac 59", "\\frac{5}{9}", true}, {"5/9", "\\frac{5}{9}", true}, {"\\frac{2}{4}", "\\frac{1}{2}", true},
    {"\\frac{1}{3}", "0.33", false}, {"\\frac{1}{3}", "0.3333333333333", true}, {"\\frac{3}{2}", "\\frac{2}{3}", false},
    {"-\\frac{1}{2}", "\\frac{-1}{2}", true}, {"\\frac{-1}{2}", "\\frac{1}{-2}", true}, {"\\frac{1}{2}", "-0.5", false},
    // Decimals and integers.
    {"0.5", ".5", true}, {"2.0", "2", true}, {"2.00", "2", true}, {"2.5", "2.50", true}, {"1e3", "1000", false},
    {".35625", "\\frac{57}{160}", true}, {"0.0000672", "6.72 \\times 10^{-5}", true}, {"3.14", "\\pi", false},
    {"10^{-5}", "0.00001", true}, {"2^{10}", "1024", true}, {"-7", "-7", true}, {"-7", "7", false},
    // Mixed numbers.
    {"15\\frac{39}{40}", "\\frac{639}{40}", true}, {"137 \\frac{1}{2}", "137.5", true}, {"2\\frac{1}{2}", "2.5", true},
    {"-1\\frac{1}{2}", "-1.5", true}, {"2\\frac{1}{2}", "1", false},
    // Roots.
    {"\\sqrt{8}", "2\\sqrt{2}", true}, {"\\sqrt{12}", "2\\sqrt3", true}, {"\\sqrt[3]{8}", "2", true},
    {"\\frac{\\sqrt{21}}{5}", "\\frac{1}{5}\\sqrt{21}", true}, {"\\sqrt{2}/2", "\\frac{1}{\\sqrt{2}}", true},
    {"\\sqrt{51}", "\\sqrt{50}", false}, {"2\\sqrt{2}", "\\sqrt{2}", false}, {"\\sqrt{2}", "1.41421356", false},
    // Symbolic.
    {"\\frac{1}{2}x", "x/2", true}, {"x^5 - x^4 + x^3 - x^2 + x - 1", "(x-1)(x^4+x^2+1)", true}, {"p - q", "-q + p", true},
    {"p - q", "q - p", false}, {"2x", "x2", true}, {"x^2-1", "(x-1)(x+1)", true}, {"x^2+1", "(x+1)^2", false},
    {"a+b", "a+c", false}, {"\\frac{x+1}{x-1}", "1 + \\frac{2}{x-1}", true}, {"x y", "yx", true},
    {"\\sin^2 x + \\cos^2 x", "1", true}, {"\\ln(e^2)", "2\\ln(e)", true}, {"\\log_2 8", "3", true},
    {"3^{x+1}", "3 \\cdot 3^x", true}, {"2^{x}", "x^2", false},
    // Pi, i, infinity.
    {"288 \\pi", "288\\pi", true}, {"\\pi/2", "\\frac{\\pi}{2}", true}, {"2\\pi", "\\pi", false},
    {"6 - 5i", "6-5i", true}, {"6 - 5i", "6+5i", false}, {"i^2", "-1", true}, {"\\frac{1}{i}", "-i", true},
    {"\\infty", "\\infty", true}, {"-\\infty", "\\infty", false},
    // Percent, degrees, dollars, units, thousands.
    {"50\\%", "50", true}, {"50%", "50", true}, {"30^\\circ", "30", true}, {"30^{\\circ}", "30", true},
    {"\\$18.90", "18.9", true}, {"\\$5", "5", true}, {"12 \\text{ cm}", "12", true}, {"12\\text{ square units}", "12", true},
    {"1,000", "1000", true}, {"1,234,567", "1234567", true}, {"1\\,000", "1000", true}, {"1,000", "100", false},
    {"5 \\text{ inches}", "5", true}, {"7 \\text{ days}", "8", false}, {"45 \\text{ degrees}", "45", true},
    // Variable prefixes and equations.
    {"x = 5", "5", true}, {"k=-3", "-3", true}, {"y = 2x + 3", "2x+3", true}, {"y = 2x + 3", "y = 3 + 2x", true},
    {"2x + 3 = y", "y = 2x + 3", true}, {"y = 2x+3", "y = 2x - 3", false}, {"x+y=1", "y = 1 - x", true},
    {"x = 5", "6", false},
    // Tuples, coordinates.
    {"(6,31,-1)", "(6, 31, -1)", true}, {"(1, 2)", "(2, 1)", false}, {"(1,2)", "(1,2,3)", false},
    {"\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", true}, {"(0.5, 1)", "(\\frac12, 1)", true},
    // Intervals and unions.
    {"(-\\sqrt{3}, \\sqrt{3})", "(-\\sqrt3,\\sqrt3)", true}, {"[1, 2)", "[1,2)", true}, {"[1, 2)", "(1, 2)", false},
    {"[1,2]", "[1,2)", false}, {"(0,9) \\cup (9,36)", "(9,36)\\cup(0,9)", true}, {"(0,9) \\cup (9,36)", "(0,36)", false},
    {"(-\\infty, 3]", "(-\\infty,3]", true}, {"x > 3", "(3, \\infty)", true}, {"x \\geq 3", "[3, \\infty)", true},
    {"x < 3", "(-\\infty, 3)", true}, {"-2 < x \\leq 5", "(-2, 5]", true}, {"x > 3", "[3, \\infty)", false},
    {"3 < x", "(3,\\infty)", true},
    // Sets, lists, plus-minus.
    {"\\{1, 2, 3\\}", "\\{3, 2, 1\\}", true}, {"\\{1, 2\\}", "\\{1, 2, 3\\}", false}, {"1, -2", "-2, 1", true},
    {"1, -2", "1, 2", false}, {"3 \\pm 2 \\sqrt{2}", "3 + 2\\sqrt2, 3 - 2\\sqrt2", true},
    {"3 \\pm 2\\sqrt{2}", "3 + 2\\sqrt{2}", false}, {"\\pm 2", "2, -2", true}, {"1,2,3", "\\{1,2,3\\}", true},
    // Matrices.
    {"\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", true},
    {"\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}", false},
    {"\\begin{pmatrix} \\frac12 \\\\ 2 \\end{pmatrix}", "\\begin{bmatrix} 0.5 \\\\ 2 \\end{bmatrix}", true},
    // Multiple choice and text.
    {"(A)", "A", true}, {"\\text{(B)}", "B", true}, {"C", "(D)", false}, {"\\text{Evelyn}", "Evelyn", true},
    {"evelyn", "\\text{Evelyn}", true}, {"Evelyn", "Bob", false}, {"\\text{no solution}", "no solution", true},
    // Left/right and display commands.
    {"\\left(\\frac{1}{2}\\right)", "\\frac{1}{2}", true}, {"\\displaystyle\\frac{1}{2}", "0.5", true},
    {"\\boxed{5}", "5", true},
    // Absolute values and factorials.
    {"|-3|", "3", true}, {"5!", "120", true}, {"\\frac{10!}{8!}", "90", true}, {"3!", "5", false},
    // Subscripts.
    {"a_1 + a_2", "a_2 + a_1", true}, {"a_{10}", "a_{10}", true}, {"a_1", "a_2", false},
    // More fractions and numbers.
    {"\\frac{6}{8}", "\\frac{3}{4}", true}, {"\\frac{3}{4}", "0.75", true}, {"0.75", "\\frac{3}{5}", false},
    {"\\frac{22}{7}", "\\pi", false}, {"1/2", "2/4", true}, {"-0", "0", true}, {"0.1", "0.10", true}, {"100", "1e2", false},
    {"\\frac{1}{2}+\\frac{1}{3}", "\\frac{5}{6}", true}, {"2^{-1}", "\\frac{1}{2}", true}, {"4^{1/2}", "2", true},
    {"(-2)^2", "4", true}, {"-2^2", "-4", true}, {"-2^2", "4", false}, {"3 \\times 4", "12", true}, {"3\\cdot4", "12", true},
    {"12 \\div 4", "3", true}, {"10^{3}", "1000", true}, {"1.5", "\\frac{3}{2}", true}, {"1.49", "\\frac{3}{2}", false},
    {"2\\frac{3}{4}", "\\frac{11}{4}", true}, {"0.999", "1", false}, {"3.0", "3", true},
    // More roots and surds.
    {"\\sqrt{18}", "3\\sqrt{2}", true}, {"\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", true},
    {"\\sqrt{3}+\\sqrt{2}", "\\sqrt{2}+\\sqrt{3}", true}, {"\\sqrt{5}", "5^{1/2}", true}, {"\\sqrt{5}", "5^{1/3}", false},
    {"2+\\sqrt{3}", "2-\\sqrt{3}", false}, {"\\sqrt{x^2}", "|x|", true}, {"4\\sqrt{3}", "\\sqrt{48}", true},
    // More symbolic.
    {"(a+b)^2", "a^2+2ab+b^2", true}, {"(a+b)^2", "a^2+b^2", false}, {"\\frac{a}{b}", "a b^{-1}", true},
    {"x(x+1)", "x^2+x", true}, {"\\frac{x^2-1}{x+1}", "x-1", true}, {"2(x+3)", "2x+6", true}, {"2(x+3)", "2x+3", false},
    {"n^2+n", "n(n+1)", true}, {"\\frac{n(n+1)}{2}", "\\frac{n^2+n}{2}", true},
    {"\\cos(0)", "1", true}, {"\\sin(\\pi/6)", "\\frac12", true}, {"\\tan(\\pi/4)", "1", true}, {"\\sin x", "\\cos x", false},
    {"\\alpha+\\beta", "\\beta+\\alpha", true}, {"\\theta^2", "\\theta \\cdot \\theta", true}, {"2\\theta", "\\theta", false},
    // More tuples, intervals, sets.
    {"(1,2,3)", "(1, 2, 3)", true}, {"(1,2,3)", "(1,3,2)", false}, {"(-1, \\frac{1}{2})", "(-1, 0.5)", true},
    {"[0, 1]", "[0,1]", true}, {"(0, 1]", "[0, 1]", false}, {"(-\\infty, 0) \\cup (0, \\infty)", "(0,\\infty)\\cup(-\\infty,0)", true},
    {"x \\leq -1", "(-\\infty, -1]", true}, {"x<-1", "(-\\infty,-1)", true}, {"\\{-1, 1\\}", "\\{1, -1\\}", true},
    {"\\{0\\}", "0", true}, {"2, 3, 5", "5, 3, 2", true}, {"2, 3, 5", "2, 3", false}, {"-3, 3", "\\pm 3", true},
    // More units and wording.
    {"20 \\text{ dollars}", "20", true}, {"3 \\text{ hours}", "3", true}, {"8 \\text{ cm}^2", "8", true},
    {"\\text{12 pages}", "12", true}, {"10\\%", "0.1", false},
    // More choices and text.
    {"(E)", "E", true}, {"\\textbf{(A)}", "A", true}, {"b", "B", true}, {"\\text{even}", "even", true}, {"odd", "even", false},
    // Malformed or empty.
    {"", "5", false}, {"5", "", false}, {"\\frac{1}{0}", "1", false}, {"(((", "1", false}, {"5)", "5", false},
};

TEST(MathVerifier, HandWrittenCasesCoverEveryRule) {
  int wrong = 0;
  for (const Case& c : kCases) {
    const auto v = math_equal(c.answer, c.reference);
    if (v.equal != c.equal) {
      ++wrong;
      ADD_FAILURE() << "'" << c.answer << "' vs '" << c.reference << "': got " << v.equal << " (" << v.reason << ")";
    }
    // Symmetric.
    EXPECT_EQ(math_equal(c.reference, c.answer).equal, c.equal) << "reversed: '" << c.reference << "' vs '" << c.answer << "'";
  }
  std::cout << sizeof(kCases) / sizeof(kCases[0]) << " cases, " << wrong << " wrong\n";
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
