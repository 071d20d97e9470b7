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
// Every check is bounded: it runs in a worker process (r1-math-worker) under a memory limit, and r1
// kills the worker at the time limit, so one pathological answer costs only its own budget and
// checks run in parallel; besides, inputs over max_chars, exponents that would build huge numbers
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
  double time_limit_s = 1.0;     // wall clock per check: "too large: time limit"
  size_t memory_bytes = size_t(512) << 20;  // the worker's address space during a check
};

// The normalised form both sides go through before comparison (exposed for tests and debugging).
std::string normalize_math_answer(std::string_view answer);

// Thread-safe; each call takes a worker process of a pool (at most one per core), started on
// first use. Throws r1::Error if r1-math-worker cannot be found or started.
MathVerdict math_equal(std::string_view answer, std::string_view reference, const MathVerifyOptions& options = {});

// The check itself, in the calling process: the time limit is only polled between steps, memory
// is not bounded, and it is not thread-safe (GiNaC). What r1-math-worker runs.
MathVerdict math_equal_in_process(std::string_view answer, std::string_view reference, const MathVerifyOptions& options);

struct MathCheckerStats {
  int64_t checks = 0;
  int64_t killed_at_time_limit = 0;  // workers killed at the wall-clock limit
  int64_t worker_failures = 0;       // workers that died (out of memory) or could not answer
  size_t peak_worker_rss_bytes = 0;  // the largest resident set of any worker so far
};
MathCheckerStats math_checker_stats();

}  // namespace r1
