// r1_bench_tokenizer: encode throughput of one tokenizer.json on one text file, JSON on stdout.
//   r1_bench_tokenizer --tokenizer FILE --input TEXT [--threads N]
// The file is cut into documents at blank lines; threads > 1 uses encode_batch.
//   r1_bench_tokenizer --scaling --input TEXT --merges N
// times the incremental trainer against the brute-force reference (tests/) for N merges.
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "reference_bpe_trainer.h"
#include "tokenizer/patterns.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/trainer.h"

int main(int argc, char** argv) {
  CLI::App app{"tokenizer encode benchmark"};
  std::string tokenizer, input;
  int threads = 1;
  int64_t merges = 0;
  bool scaling = false;
  app.add_flag("--scaling", scaling, "compare the incremental trainer with the brute-force one");
  app.add_option("--merges", merges)->capture_default_str();
  app.add_option("--tokenizer", tokenizer);
  app.add_option("--input", input)->required();
  app.add_option("--threads", threads)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::ifstream in(input, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<std::string> docs;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find("\n\n", pos);
    end = end == std::string::npos ? text.size() : end + 2;
    docs.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  if (scaling) {
    bool byte_level = false;
    auto pre = r1::pretokenizer_from_json(r1::pattern_pretokenizer("deepseek-v3"), "deepseek-v3", &byte_level);
    r1::WordCounts counts;
    r1::count_words(*pre, docs, 2, counts);
    auto time_it = [](auto f) {
      auto t0 = std::chrono::steady_clock::now();
      f();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    std::vector<std::pair<std::string, std::string>> fast, slow;
    const double incremental = time_it([&] { fast = r1::learn_merges(counts, merges, 2); });
    const double brute = time_it([&] { slow = r1::testing::brute_force_merges(counts, merges, 2); });
    std::cout << nlohmann::json{{"words", counts.size()}, {"merges", merges}, {"incremental_s", incremental},
                                {"brute_force_s", brute}, {"identical", fast == slow}}.dump()
              << std::endl;
    return 0;
  }
  r1::Tokenizer t = r1::Tokenizer::load(tokenizer);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<int32_t>> all;
  if (threads <= 1) {
    for (const auto& d : docs) all.push_back(t.encode(d));
  } else {
    all = t.encode_batch(docs, false, threads);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Checksum of every id in order, to compare with the reference library's output.
  size_t tokens = 0;
  uint64_t checksum = 1469598103934665603ULL;
  for (const auto& ids : all)
    for (int32_t id : ids) {
      checksum = (checksum ^ static_cast<uint64_t>(id)) * 1099511628211ULL;
      ++tokens;
    }
  std::cout << nlohmann::json{{"mb_per_s", text.size() / s / 1e6}, {"tokens", tokens}, {"checksum", std::to_string(checksum)}, {"mb", text.size() / 1e6},
                              {"threads", threads}}.dump()
            << std::endl;
}
