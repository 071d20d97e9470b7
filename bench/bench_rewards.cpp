// r1_bench_rewards: the reward checkers' speed, one measurement per run, JSON on stdout.
//   r1_bench_rewards math --pairs FILE.jsonl     math_equal on {answer, reference} lines
//   r1_bench_rewards sandbox --humaneval FILE    HumanEval canonical solutions in the sandbox
//   r1_bench_rewards math-fuzz --math500 FILE    random and adversarial LaTeX and mutated MATH-500
//                                                answers: time per check, kills, worker failures, peak RSS
#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include <CLI/CLI.hpp>
#include <map>

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

// Inputs a hostile or broken policy could box, by class.
class LatexFuzzer {
 public:
  explicit LatexFuzzer(uint64_t seed) : rng_(seed) {}

  std::pair<std::string, std::string> next(const std::vector<std::string>& answers) {
    switch (pick(9)) {
      case 0: return {"nested powers", tower()};
      case 8: return {"powers at the parser's limits", limit_tower()};
      case 1: return {"factorials", factorials()};
      case 2: return {"huge digit strings", digits(1 + pick(1200))};
      case 3: return {"deep nesting", nesting()};
      case 4: return {"long sums", long_sum()};
      case 5: return {"malformed braces", malformed(answers[pick(answers.size())])};
      case 6: return {"token soup", soup()};
      default: return {"mutated MATH-500 answers", mutated(answers[pick(answers.size())])};
    }
  }

 private:
  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  std::string number() { return std::to_string(pick(10) < 7 ? pick(10) + 2 : pick(100000)); }
  std::string digits(size_t n) {
    std::string s(n, '0');
    for (char& c : s) c = static_cast<char>('0' + pick(10));
    if (pick(3) == 0) s.insert(pick(n) , ".");
    return s;
  }
  std::string tower() {
    std::string s = number();
    const size_t levels = 2 + pick(4);
    for (size_t i = 0; i < levels; ++i)
      s = pick(2) ? "(" + s + ")^{" + number() + "}" : number() + "^{" + s + "}";
    return s;
  }
  // Each power within the parser's own bound (exponent <= 4096, factorial <= 1000), their
  // combination astronomically large: ((9^{4096})^{4096})^{4096} has 4096^3 log10(9) digits.
  std::string limit_tower() {
    std::string s = pick(4) ? std::to_string(2 + pick(8)) : std::to_string(500 + pick(501)) + "!";
    for (size_t i = 0, n = 2 + pick(3); i < n; ++i) s = "(" + s + ")^{" + std::to_string(1000 + pick(3097)) + "}";
    return pick(3) ? s : "\\frac{" + s + "}{" + s + "+1}";
  }
  std::string factorials() {
    std::string s = std::to_string(pick(3) ? pick(5000) : pick(1000000));
    for (size_t i = 0, n = 1 + pick(3); i < n; ++i) s = pick(2) ? "(" + s + ")!" : s + "!";
    return pick(2) ? s : "\\frac{" + s + "}{" + tower() + "}";
  }
  std::string nesting() {
    const size_t depth = 50 + pick(450);
    static const std::pair<const char*, const char*> kinds[] = {
        {"(", ")"}, {"{", "}"}, {"\\sqrt{", "}"}, {"\\frac{1}{", "}"}, {"\\left(", "\\right)"}, {"|", "|"}};
    const auto& [open, close] = kinds[pick(6)];
    std::string s;
    for (size_t i = 0; i < depth; ++i) s += open;
    s += number();
    for (size_t i = 0; i < depth; ++i) s += close;
    return s;
  }
  std::string long_sum() {
    std::string s = "x";
    while (s.size() < 900 + pick(300)) s += (pick(2) ? "+" : "-") + number() + (pick(2) ? "x^{" + number() + "}" : "");
    return s;
  }
  std::string malformed(std::string s) {
    static const char* junk[] = {"{", "}", "(", ")", "\\", "^", "_", "\\frac", "\\sqrt", "$", "!", "\\left", "&"};
    for (size_t i = 0, n = 1 + pick(6); i < n; ++i) {
      const size_t at = s.empty() ? 0 : pick(s.size() + 1);
      if (pick(2) && !s.empty() && at < s.size()) s.erase(at, 1);
      else s.insert(at, junk[pick(13)]);
    }
    return s;
  }
  std::string soup() {
    static const char* tokens[] = {"x", "e", "\\pi", "i", "9", "99999", "^", "_", "{", "}", "(", ")", "!", "\\frac",
                                   "\\sqrt", "\\ln", "\\log", "\\sin", "+", "-", "*", "/", "=", "<", ",",
                                   "\\infty", "\\pm", "\\cup", "[", "]", "|", "\\cdot", "\\dfrac", "."};
    std::string s;
    for (size_t i = 0, n = 1 + pick(200); i < n; ++i) s += tokens[pick(34)];
    return s;
  }
  std::string mutated(std::string s) {
    switch (pick(5)) {
      case 0: return "(" + s + ")^{" + number() + "}";
      case 1: return s + "!";
      case 2: return "\\frac{" + s + "}{" + s + "-" + s + "}";
      case 3: return s + "^{" + s + "^{" + s + "}}";
      default: return malformed(s);
    }
  }
  std::mt19937_64 rng_;
};

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
  std::string math500_file;
  int fuzz_checks = 2000, fuzz_threads = 0;
  uint64_t seed = 1;
  auto* fuzz = app.add_subcommand("math-fuzz");
  fuzz->add_option("--math500", math500_file)->required();
  fuzz->add_option("--checks", fuzz_checks)->capture_default_str();
  fuzz->add_option("--threads", fuzz_threads, "0: cores")->capture_default_str();
  fuzz->add_option("--seed", seed)->capture_default_str();
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
  } else if (*fuzz) {
    std::vector<std::string> answers;
    for (const auto& r : read_lines(math500_file)) answers.push_back(r["answer"].get<std::string>());
    LatexFuzzer fuzzer(seed);
    std::vector<std::pair<std::string, std::string>> inputs;  // (class, input)
    for (int i = 0; i < fuzz_checks; ++i) inputs.push_back(fuzzer.next(answers));
    const r1::MathVerifyOptions limits;
    std::vector<double> seconds(inputs.size());
    std::vector<std::string> reasons(inputs.size());
    std::atomic<size_t> next{0};
    const int threads = fuzz_threads > 0 ? fuzz_threads : static_cast<int>(std::thread::hardware_concurrency());
    const auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&] {
        for (size_t i = next++; i < inputs.size(); i = next++) {
          const auto s = Clock::now();
          reasons[i] = r1::math_equal(inputs[i].second, answers[i % answers.size()], limits).reason;
          seconds[i] = std::chrono::duration<double>(Clock::now() - s).count();
        }
      });
    for (auto& t : pool) t.join();
    const double total = std::chrono::duration<double>(Clock::now() - t0).count();
    std::map<std::string, std::vector<double>> by_class;
    for (size_t i = 0; i < inputs.size(); ++i) by_class[inputs[i].first].push_back(seconds[i]);
    nlohmann::json classes = nlohmann::json::object();
    auto summary = [&](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return nlohmann::json{{"checks", v.size()}, {"p50_ms", 1000 * v[v.size() / 2]},
                            {"p99_ms", 1000 * v[std::min(v.size() - 1, v.size() * 99 / 100)]}, {"max_ms", 1000 * v.back()}};
    };
    for (const auto& [name, v] : by_class) classes[name] = summary(v);
    const auto stats = r1::math_checker_stats();
    int64_t over = 0;  // answered later than the limit plus 100 ms of slack: a hang
    for (double s : seconds) over += s > limits.time_limit_s + 0.1;
    out = summary(seconds);
    out["classes"] = classes;
    out["threads"] = threads;
    out["seconds"] = total;
    out["killed_at_time_limit"] = stats.killed_at_time_limit;
    out["worker_failures"] = stats.worker_failures;
    out["hangs"] = over;
    out["peak_worker_rss_mb"] = static_cast<double>(stats.peak_worker_rss_bytes) / (1 << 20);
    out["memory_limit_mb"] = static_cast<double>(limits.memory_bytes) / (1 << 20);
    out["time_limit_ms"] = 1000 * limits.time_limit_s;
  } else {
    const auto task = r1::load_eval_task(humaneval_file, "");
    r1::CodeSandbox box;
    std::vector<std::function<r1::TestReport()>> jobs;
    for (const auto& item : task.items) {
      const nlohmann::json& r = item.metadata;
      const std::string p = r["prompt"], s = r["canonical_solution"], t = r["test"], e = r["entry_point"];
      jobs.push_back([&box, p, s, t, e] { return box.run_humaneval(p + s, p, t, e); });
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
