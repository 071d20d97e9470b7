// Is a model's answer mathematically the same as the reference? The rule-based math reward of
// R1-Zero, and the grader of r1 eval. Torch-free; symbolic work in GiNaC.
//
// Steps: normalise the LaTeX (\dfrac, \left/\right, \text{}, ^\circ, \%, \$, thousands
// separators, unit words, "x =" prefixes, spacing), then compare by structure: exact string;
// multiple-choice letters; tuples and intervals (brackets must agree); sets, "a, b" lists and ±
// (order-free); unions of intervals; inequalities as intervals; equations; matrices; and
// scalars, parsed into GiNaC expressions: exact rationals compare exactly, other numbers within a
// relative 1e-9, expressions with variables by evaluation at several random points.
//
// Every check is bounded: a time limit, inputs over max_chars, exponents that would build huge numbers
// (9^{9^{9^9}}), factorials over 1000 and nesting deeper than 200 are "not equal" at once.
#pragma once
#include <string>
#include <string_view>

namespace r1 {

struct MathVerdict {
  bool equal = false;
  std::string reason;  // which rule decided, e.g. "numeric", "symbolic", "set", "too large"
};

struct MathVerifyOptions {
  size_t max_chars = 1000;       // per answer, after extraction
  double rel_tolerance = 1e-9;   // for inexact numbers
  double time_limit_s = 1.0;     // checked between parsing and evaluation steps: "too large: time limit"
};

// The normalised form both sides go through before comparison (exposed for tests and debugging).
std::string normalize_math_answer(std::string_view answer);

MathVerdict math_equal(std::string_view answer, std::string_view reference, const MathVerifyOptions& options = {});

}  // namespace r1
