// BPE training against a brute-force reference trainer (test-only: recounts every pair of
// every word before each merge), plus the files training writes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "expect_error.h"
#include "reference_bpe_trainer.h"
#include "test_data_dir.h"
#include "tokenizer/patterns.h"
#include "tokenizer/trainer.h"
#include "tokenizer/unicode.h"
#include "util/jsonl.h"

namespace r1 {
namespace {

using testing::expect_error;
using testing::brute_force_merges;
using Merges = std::vector<std::pair<std::string, std::string>>;

using testing::test_data;

WordCounts gsm8k_word_counts(const std::string& pattern, int lines) {
  const auto rows = read_jsonl_rows(test_data() + "/gsm8k/train.jsonl.gz");
  EXPECT_GE(rows.size(), static_cast<size_t>(lines));
  std::vector<std::string> texts;
  for (int i = 0; i < lines && i < static_cast<int>(rows.size()); ++i)
    texts.push_back(rows[i].value["question"].get<std::string>() + "\n" + rows[i].value["answer"].get<std::string>());
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
