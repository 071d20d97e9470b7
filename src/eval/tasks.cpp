#include "eval/tasks.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "rewards/answer_extraction.h"
#include "util/data_dir.h"
#include "util/error.h"
#include "util/jsonl.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

using nlohmann::json;

std::vector<json> read_jsonl(const std::string& path) {
  std::vector<json> rows;
  for (auto& r : read_jsonl_rows(path)) rows.push_back(std::move(r.value));
  return rows;
}

std::string field(const json& row, std::initializer_list<const char*> names, const std::string& where) {
  for (const char* n : names)
    if (row.contains(n) && row[n].is_string()) return row[n].get<std::string>();
  std::string list;
  for (const char* n : names) list += std::string(list.empty() ? "" : "/") + n;
  throw Error(where + ": field " + list + " is missing or not a string");
}

std::string answer_of(const json& row, const std::string& where) {
  if (row.contains("answer")) {
    const json& a = row["answer"];
    if (a.is_string()) return a.get<std::string>();
    if (a.is_number()) return a.dump();
  }
  if (row.contains("solution") && row["solution"].is_string()) {
    const auto e = extract_answer(row["solution"].get<std::string>());
    if (e.found()) return e.text;
  }
  throw Error(where + ": no 'answer' (or 'solution' with a boxed answer)");
}

}  // namespace

const std::vector<std::string>& builtin_task_names() {
  static const std::vector<std::string> names = {"gsm8k", "math500", "aime24", "amc23", "minerva_math", "humaneval"};
  return names;
}

EvalTask load_eval_task(const std::string& task, const std::string& data_dir_or_default) {
  const auto& names = builtin_task_names();
  const bool builtin = std::find(names.begin(), names.end(), task) != names.end();
  const std::string data_dir = builtin && data_dir_or_default.empty() ? builtin_data_dir() : data_dir_or_default;
  EvalTask t;
  t.name = task;
  t.kind = "math";
  t.reward = "accuracy_math";
  std::string path;
  if (task == "gsm8k") path = data_dir + "/gsm8k/test.jsonl";
  else if (task == "math500") path = data_dir + "/math500/test.jsonl";
  else if (task == "aime24") path = data_dir + "/aime24/test.jsonl";
  else if (task == "amc23") path = data_dir + "/amc23/test.jsonl";
  else if (task == "minerva_math") path = data_dir + "/minerva_math/test.jsonl";
  else if (task == "humaneval") path = data_dir + "/humaneval/HumanEval.jsonl.gz";
  else if (fs::exists(task)) path = task;
  else {
    std::string known;
    for (const auto& n : builtin_task_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("task '" + task + "' is neither a built-in task (" + known + ") nor a file");
  }
  if (!fs::exists(path)) throw Error(path + ": not found" + (builtin ? " (the built-in data: set --data-dir or R1_DATA_DIR)" : ""));
  const auto rows = read_jsonl(path);
  for (size_t i = 0; i < rows.size(); ++i) {
    const json& row = rows[i];
    const std::string where = path + ":" + std::to_string(i + 1);
    EvalItem item;
    item.id = row.contains("task_id") ? row["task_id"].get<std::string>()
              : row.contains("unique_id") ? row["unique_id"].get<std::string>()
              : row.contains("id") ? row["id"].dump()
                                   : std::to_string(i);
    if (task == "humaneval" || row.contains("entry_point") || row.contains("tests")) {
      t.kind = "code";
      t.reward = "accuracy_code";
      item.question = field(row, {"prompt", "question", "problem"}, where);
      item.metadata = row;
      item.metadata["code_prompt"] = item.question;
    } else {
      item.question = field(row, {"problem", "question", "prompt"}, where);
      if (task == "gsm8k") {
        const auto e = extract_answer(field(row, {"answer"}, where));  // "#### N"
        if (!e.found()) throw Error(where + ": no '#### N' in the answer");
        item.metadata = {{"answer", e.text}};
      } else {
        item.metadata = {{"answer", answer_of(row, where)}};
      }
    }
    t.items.push_back(std::move(item));
  }
  if (t.items.empty()) throw Error(path + ": no problems");
  return t;
}

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  if (k > n || k < 1) return std::nan("");
  if (n - c < k) return 1.0;
  double fail = 1.0;  // C(n - c, k) / C(n, k) as a product, without huge binomials
  for (int64_t i = n - c + 1; i <= n; ++i) fail *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - fail;
}

}  // namespace r1
