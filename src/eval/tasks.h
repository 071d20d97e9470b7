// Evaluation tasks: readers for the built-in data sets (the project's data/: gsm8k, math500, aime24,
// amc23, minerva_math, humaneval) and generic JSONL, and the metrics r1 eval reports. Torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace r1 {

struct EvalItem {
  std::string id;
  std::string question;       // the problem text (math) or the function prompt (code)
  nlohmann::json metadata;    // what the reward checks against ("answer", "test", "entry_point", ...)
};

struct EvalTask {
  std::string name;
  std::string kind;           // "math" or "code"
  std::string reward;         // default reward spec
  std::vector<EvalItem> items;
};

// `task` is a built-in name (read from `data_dir`, or from builtin_data_dir() when it is empty) or a
// JSONL file of {"prompt"|"problem"|"question", "answer", ...} lines (math) or with "test"/"tests" (code).
EvalTask load_eval_task(const std::string& task, const std::string& data_dir = "");
const std::vector<std::string>& builtin_task_names();

// The unbiased pass@k estimator (Chen et al. 2021): 1 - C(n - c, k) / C(n, k).
double pass_at_k(int64_t n, int64_t c, int64_t k);

}  // namespace r1
