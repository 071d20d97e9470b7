// BPE training against a brute-force reference trainer (test-only: recounts every pair of
// every word before each merge), plus the files training writes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "expect_error.h"
#include "tokenizer/patterns.h"
#include "tokenizer/trainer.h"
#include "tokenizer/unicode.h"

namespace r1 {
namespace {

using testing::expect_error;
using Merges = std::vector<std::pair<std::string, std::string>>;

// The definition of BPE training, written as plainly as possible: same tie rule as the trainer
// (highest count, then smallest (left id, right id)).
Merges brute_force_merges(const WordCounts& counts, int64_t num_merges, uint64_t min_frequency) {
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

std::string shared_data() {
  const char* env = std::getenv("R1_SHARED_DATA");
  return env ? env : "../../../shared/data";
}

WordCounts gsm8k_word_counts(const std::string& pattern, int lines) {
  std::ifstream in(shared_data() + "/gsm8k/train.jsonl");
  EXPECT_TRUE(in.good()) << "shared data not found: set R1_SHARED_DATA";
  std::vector<std::string> texts;
  std::string line;
  for (int i = 0; i < lines && std::getline(in, line); ++i) {
    auto j = nlohmann::json::parse(line);
    texts.push_back(j["question"].get<std::string>() + "\n" + j["answer"].get<std::string>());
  }
  bool byte_level = false;
  auto pre = pretokenizer_from_json(pattern_pretokenizer(pattern), pattern, &byte_level);
  WordCounts counts;
  count_words(*pre, texts, 2, counts);
  return counts;
}

TEST(TokenizerTraining, IncrementalMergesEqualTheBruteForceReference) {
  // Overlapping runs ("aaaa", "abab") are where incremental pair updates go wrong.
  WordCounts synthetic = {{"aaaa", 5}, {"abab", 7}, {"aaab", 3}, {"babab", 2}, {"ab", 11}, {" aaaaaaa", 1}, {"xyz", 4}};
  EXPECT_EQ(learn_merges(synthetic, 20, 1, nullptr), brute_force_merges(synthetic, 20, 1));
  for (const std::string pattern : {"deepseek-v3", "gpt2", "deepseek-llm"}) {
    const WordCounts counts = gsm8k_word_counts(pattern, 300);
    const Merges fast = learn_merges(counts, 400, 2, nullptr);
    EXPECT_EQ(fast.size(), 400u) << pattern;
    EXPECT_EQ(fast, brute_force_merges(counts, 400, 2)) << pattern;
  }
}

TEST(TokenizerTraining, TrainedFilesReloadAndEncodeIdentically) {
  const std::string dir = ::testing::TempDir();
  const std::string corpus = dir + "/corpus.txt", path = dir + "/trained_tokenizer.json";
  {
    std::ofstream out(corpus);
    for (int i = 0; i < 200; ++i) out << "The answer is " << i * 7 << ". Natalia sold " << i << " clips in April!\n";
  }
  TrainOptions opts;
  opts.vocab_size = 400;
  opts.special_tokens = {"<|bos|>", "<|eos|>"};
  opts.pad_to_multiple = 64;
  Tokenizer t = Tokenizer::from_json(train_tokenizer({corpus}, "", opts), path);
  EXPECT_EQ(t.vocab_size() % 64, 0);
  EXPECT_EQ(*t.token_to_id("<|bos|>"), 256 + static_cast<int32_t>(t.model().merges().size()));
  t.save(path);
  Tokenizer back = Tokenizer::load(path);
  for (const std::string text : {"The answer is 42.", "Natalia sold 5 clips<|eos|>", "unseen wörds 你好"}) {
    EXPECT_EQ(back.encode(text), t.encode(text));
    EXPECT_EQ(back.decode(back.encode(text)), text);
  }
  EXPECT_LT(t.encode("The answer is").size(), 6u);  // the frequent phrase got merged
}

TEST(TokenizerTraining, BadInputIsAClearError) {
  const std::string dir = ::testing::TempDir();
  const std::string empty = dir + "/empty.txt", bad = dir + "/bad.jsonl";
  std::ofstream(empty).close();
  std::ofstream(bad) << "{\"text\": \"ok\"}\n{\"text\": 5}\n";
  TrainOptions opts;
  opts.vocab_size = 300;
  expect_error([&] { train_tokenizer({empty}, "", opts); }, "corpus is empty");
  expect_error([&] { train_tokenizer({bad}, "text", opts); }, "bad.jsonl:2: field 'text'");
  expect_error([&] { train_tokenizer({dir + "/missing.txt"}, "", opts); }, "missing.txt: cannot open");
  opts.vocab_size = 100;
  expect_error([&] { train_tokenizer({bad}, "text", opts); }, "smaller than the 256 byte tokens");
  expect_error([] { pattern_pretokenizer("bert"); }, "known: deepseek-llm");
}

}  // namespace
}  // namespace r1
