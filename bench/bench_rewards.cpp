// r1_bench_rewards: the reward checkers' speed, one measurement per run, JSON on stdout.
//   r1_bench_rewards math --pairs FILE.jsonl     math_equal on {answer, reference} lines
//   r1_bench_rewards sandbox --humaneval FILE    HumanEval canonical solutions in the sandbox
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "eval/tasks.h"
#include "rewards/math_verifier.h"
#include "rewards/sandbox.h"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<nlohmann::json> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"r1 reward benchmarks"};
  std::string pairs_file, humaneval_file;
  int rounds = 3;
  auto* math = app.add_subcommand("math");
  math->add_option("--pairs", pairs_file)->required();
  math->add_option("--rounds", rounds)->capture_default_str();
  auto* sandbox = app.add_subcommand("sandbox");
  sandbox->add_option("--humaneval", humaneval_file)->required();
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  nlohmann::json out;
  if (*math) {
    const auto rows = read_lines(pairs_file);
    std::vector<std::pair<std::string, std::string>> pairs;
    for (const auto& r : rows) pairs.emplace_back(r["answer"].get<std::string>(), r["reference"].get<std::string>());
    for (const auto& [a, b] : pairs) r1::math_equal(a, b);  // warm-up
    std::vector<double> latencies;
    const auto t0 = Clock::now();
    for (int round = 0; round < rounds; ++round)
      for (const auto& [a, b] : pairs) {
        const auto s = Clock::now();
        r1::math_equal(a, b);
        latencies.push_back(std::chrono::duration<double>(Clock::now() - s).count());
      }
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    std::sort(latencies.begin(), latencies.end());
    out = {{"checks", latencies.size()}, {"checks_per_s", latencies.size() / seconds},
           {"p50_ms", 1000 * latencies[latencies.size() / 2]}, {"p99_ms", 1000 * latencies[latencies.size() * 99 / 100]},
           {"max_ms", 1000 * latencies.back()}};
  } else {
    const auto task = r1::load_eval_task(humaneval_file, "");
    r1::CodeSandbox box;
    std::vector<std::function<r1::TestReport()>> jobs;
    for (const auto& item : task.items) {
      const nlohmann::json& r = item.metadata;
      const std::string p = r["prompt"], s = r["canonical_solution"], t = r["test"], e = r["entry_point"];
      jobs.push_back([&box, p, s, t, e] { return box.run_humaneval(p, s, t, e); });
    }
    const auto t0 = Clock::now();
    const auto reports = box.run_many(jobs);
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    int passed = 0;
    for (const auto& r : reports) passed += r.pass_fraction() == 1.0;
    out = {{"programs", reports.size()}, {"passed", passed}, {"programs_per_s", reports.size() / seconds},
           {"isolated", box.isolated()}};
  }
  std::cout << out.dump() << std::endl;
  return 0;
}
