// The definition of BPE training written as plainly as possible, as an independent reference
// for the incremental trainer (tests) and a baseline for its scaling (bench): every pair of every
// word is recounted before each merge. Same tie rule as the trainer: highest count, then the
// smallest (left id, right id).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "tokenizer/trainer.h"
#include "tokenizer/unicode.h"

namespace r1::testing {

inline std::vector<std::pair<std::string, std::string>> brute_force_merges(const WordCounts& counts,
                                                                           int64_t num_merges, uint64_t min_frequency) {
  using Merges = std::vector<std::pair<std::string, std::string>>;
  std::vector<std::string> token;
  for (int b = 0; b < 256; ++b) token.push_back(byte_to_unicode(static_cast<uint8_t>(b)));
  std::vector<std::pair<std::vector<int32_t>, uint64_t>> words;
  for (const auto& [w, c] : counts) {
    std::vector<int32_t> s;
    for (unsigned char ch : w) s.push_back(ch);
    words.emplace_back(s, c);
  }
  Merges merges;
  while (static_cast<int64_t>(merges.size()) < num_merges) {
    std::map<std::pair<int32_t, int32_t>, uint64_t> pairs;
    for (const auto& [s, c] : words)
      for (size_t i = 0; i + 1 < s.size(); ++i) pairs[{s[i], s[i + 1]}] += c;
    std::pair<int32_t, int32_t> best{-1, -1};
    uint64_t best_count = 0;
    for (const auto& [p, c] : pairs)  // std::map iterates pairs in increasing order: first max wins ties
      if (c > best_count) best = p, best_count = c;
    if (best_count < std::max<uint64_t>(min_frequency, 1)) break;
    const int32_t merged = static_cast<int32_t>(token.size());
    token.push_back(token[best.first] + token[best.second]);
    merges.emplace_back(token[best.first], token[best.second]);
    for (auto& [s, c] : words) {
      std::vector<int32_t> out;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == best.first && s[i + 1] == best.second) out.push_back(merged), i += 2;
        else out.push_back(s[i++]);
      }
      s = out;
    }
  }
  return merges;
}

}  // namespace r1::testing
