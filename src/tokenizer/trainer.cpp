#include "tokenizer/trainer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <queue>
#include <thread>

#include "tokenizer/patterns.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace r1 {
namespace {

using Pair = std::pair<int32_t, int32_t>;

struct PairHash {
  size_t operator()(const Pair& p) const { return std::hash<uint64_t>()((uint64_t(uint32_t(p.first)) << 32) | uint32_t(p.second)); }
};

struct Word {
  std::vector<int32_t> symbols;
  uint64_t count;
};

// Plain text is cut into blocks of about kBlockBytes; blocks or JSONL records are counted in
// parallel once kBatchBytes have been read (memory stays bounded by the batch + the counts).
constexpr size_t kBlockBytes = 1 << 20;
constexpr size_t kBatchBytes = 32 << 20;

}  // namespace

void count_words(const PreTokenizer& pretokenizer, const std::vector<std::string>& texts, int threads,
                 WordCounts& counts) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::max(1, std::min<int>(threads, static_cast<int>(texts.size())));
  std::vector<WordCounts> local(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (size_t i = t; i < texts.size(); i += threads) {
        std::vector<std::string> pieces{texts[i]};
        pretokenizer.split(pieces);
        for (auto& p : pieces) ++local[t][p];
      }
    });
  for (auto& th : pool) th.join();
  for (auto& l : local)
    for (auto& [w, c] : l) counts[w] += c;
}

std::vector<std::pair<std::string, std::string>> learn_merges(const WordCounts& counts, int64_t num_merges,
                                                              uint64_t min_frequency,
                                                              const TrainOptions::ProgressFn& progress) {
  // Token strings: ids 0..255 are the byte characters in byte order; merges append.
  std::vector<std::string> token;
  for (int b = 0; b < 256; ++b) token.push_back(byte_to_unicode(static_cast<uint8_t>(b)));
  // Words in a fixed order (sorted), so results do not depend on hash-map iteration order.
  std::vector<std::pair<std::string, uint64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto& [w, c] : sorted) {
    Word word{{}, c};
    for (unsigned char ch : w) word.symbols.push_back(ch);
    words.push_back(std::move(word));
  }
  std::unordered_map<Pair, int64_t, PairHash> pair_count;
  std::unordered_map<Pair, std::vector<uint32_t>, PairHash> where;  // words holding the pair (may repeat)
  for (uint32_t wi = 0; wi < words.size(); ++wi) {
    const auto& s = words[wi].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const Pair p{s[i], s[i + 1]};
      pair_count[p] += static_cast<int64_t>(words[wi].count);
      where[p].push_back(wi);
    }
  }
  // Max-heap on (count, then smallest pair); entries go stale when counts change.
  struct Entry {
    int64_t count;
    Pair pair;
    bool operator<(const Entry& o) const { return count != o.count ? count < o.count : pair > o.pair; }
  };
  std::priority_queue<Entry> heap;
  for (const auto& [p, c] : pair_count) heap.push({c, p});

  std::vector<std::pair<std::string, std::string>> merges;
  while (static_cast<int64_t>(merges.size()) < num_merges && !heap.empty()) {
    const Entry top = heap.top();
    heap.pop();
    auto it = pair_count.find(top.pair);
    if (it == pair_count.end() || it->second != top.count) continue;  // stale
    if (top.count < static_cast<int64_t>(std::max<uint64_t>(min_frequency, 1))) break;
    const Pair p = top.pair;
    const int32_t merged = static_cast<int32_t>(token.size());
    token.push_back(token[p.first] + token[p.second]);
    merges.emplace_back(token[p.first], token[p.second]);
    // Rewrite only the words that hold the pair; update neighbouring pair counts as we go.
    std::vector<uint32_t> holders = std::move(where[p]);
    where.erase(p);
    pair_count.erase(p);
    std::sort(holders.begin(), holders.end());
    holders.erase(std::unique(holders.begin(), holders.end()), holders.end());
    std::unordered_map<Pair, int64_t, PairHash> delta;
    for (uint32_t wi : holders) {
      auto& s = words[wi].symbols;
      const int64_t c = static_cast<int64_t>(words[wi].count);
      std::vector<int32_t> out;
      out.reserve(s.size());
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == p.first && s[i + 1] == p.second) {
          out.push_back(merged);
          i += 2;
        } else {
          out.push_back(s[i++]);
        }
      }
      // The word's pair counts change by (new pairs - old pairs); words are short.
      for (size_t i = 0; i + 1 < s.size(); ++i) delta[{s[i], s[i + 1]}] -= c;
      for (size_t i = 0; i + 1 < out.size(); ++i) {
        delta[{out[i], out[i + 1]}] += c;
        if (out[i] == merged || out[i + 1] == merged) where[{out[i], out[i + 1]}].push_back(wi);
      }
      s.swap(out);
    }
    for (const auto& [q, d] : delta) {
      if (d == 0 || q == p) continue;
      int64_t& c = pair_count[q];
      c += d;
      if (c <= 0) {
        pair_count.erase(q);
        continue;
      }
      heap.push({c, q});
    }
    if (progress && merges.size() % 100 == 0) progress("merging", merges.size(), num_merges, " merges");
  }
  return merges;
}

nlohmann::json build_tokenizer_json(const std::vector<std::pair<std::string, std::string>>& merges,
                                    const TrainOptions& options) {
  using nlohmann::json;
  json vocab = json::object();
  int32_t next = 0;
  for (int b = 0; b < 256; ++b) vocab[byte_to_unicode(static_cast<uint8_t>(b))] = next++;
  json merge_list = json::array();
  for (const auto& [a, b] : merges) {
    vocab[a + b] = next++;
    merge_list.push_back({a, b});
  }
  json added = json::array();
  auto add_special = [&](const std::string& content) {
    added.push_back({{"id", next++}, {"content", content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  };
  for (const auto& s : options.special_tokens) add_special(s);
  for (int64_t n = 0; options.pad_to_multiple > 1 && next % options.pad_to_multiple != 0; ++n)
    add_special("<|reserved_" + std::to_string(n) + "|>");
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", pattern_pretokenizer(options.pattern)},
          {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
          {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                     {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                     {"ignore_merges", false}, {"vocab", vocab}, {"merges", merge_list}}}};
}

nlohmann::json train_tokenizer(const std::vector<std::string>& files, const std::string& field,
                               const TrainOptions& options) {
  const int64_t num_merges = options.vocab_size - 256 - static_cast<int64_t>(options.special_tokens.size());
  if (num_merges < 0)
    throw Error("--vocab-size " + std::to_string(options.vocab_size) + " is smaller than the 256 byte tokens plus " +
                std::to_string(options.special_tokens.size()) + " special tokens");
  bool byte_level = false;
  auto pretokenizer = pretokenizer_from_json(pattern_pretokenizer(options.pattern), options.pattern, &byte_level);
  WordCounts counts;
  std::vector<std::string> batch;
  uint64_t total_bytes = 0;
  for (const auto& path : files) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec) total_bytes += size;
  }
  uint64_t bytes_read = 0;
  size_t batch_bytes = 0;
  auto flush = [&] {
    count_words(*pretokenizer, batch, options.threads, counts);
    batch.clear();
    batch_bytes = 0;
    if (options.progress) options.progress("counting words", bytes_read >> 20, total_bytes >> 20, " MB");
  };
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open");
    std::string line, block;
    for (int lineno = 1; std::getline(in, line); ++lineno) {
      bytes_read += line.size() + 1;
      batch_bytes += line.size() + 1;
      if (!field.empty()) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
          throw Error(path + ":" + std::to_string(lineno) + ": invalid JSON (" + e.what() + ")");
        }
        if (!j.is_object() || !j.contains(field) || !j[field].is_string())
          throw Error(path + ":" + std::to_string(lineno) + ": field '" + field + "' is missing or not a string");
        batch.push_back(j[field].get<std::string>());
      } else {
        block += line;
        block += '\n';
        if (block.size() >= kBlockBytes) batch.push_back(std::move(block)), block.clear();
      }
      if (batch_bytes >= kBatchBytes) flush();
    }
    if (!block.empty()) batch.push_back(std::move(block));
  }
  if (!batch.empty()) flush();
  if (counts.empty()) throw Error("the training corpus is empty (no text in the input files)");
  auto merges = learn_merges(counts, num_merges, options.min_frequency, options.progress);
  return build_tokenizer_json(merges, options);
}

}  // namespace r1
