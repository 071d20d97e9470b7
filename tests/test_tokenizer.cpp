// The tokenizer against the real DeepSeek-V3 and Qwen3 tokenizer.json files and the ids the
// Hugging Face tokenizers library produced for them (data/tokenizers.tar.xz, unpacked into the build tree).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "expect_error.h"
#include "test_data_dir.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/json_file.h"

namespace r1 {
namespace {

using testing::expect_error;

std::string data_dir() { return testing::test_data() + "/tokenizers"; }

const Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, Tokenizer::load(data_dir() + "/" + name + "/tokenizer.json")).first;
  return it->second;
}

class RealTokenizer : public ::testing::TestWithParam<std::string> {};

TEST_P(RealTokenizer, EncodesEverySampleExactlyLikeHuggingFace) {
  const std::string name = GetParam();
  const auto samples = read_json_file(data_dir() + "/samples.json");
  const auto categories = read_json_file(data_dir() + "/samples_categories.json");
  const auto expected = read_json_file(data_dir() + "/expected_" + name + ".json");
  const Tokenizer& t = tokenizer(name);
  ASSERT_EQ(samples.size(), expected["no_special"].size());
  int divergent_mismatches = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const std::string text = samples[i].get<std::string>();
    const auto want = expected["no_special"][i].get<std::vector<int32_t>>();
    const auto got = t.encode(text);
    if (categories[i]["cat"] == "divergent") {
      divergent_mismatches += got != want;
      continue;
    }
    EXPECT_EQ(got, want) << name << " sample " << i << " (" << categories[i]["cat"] << ")";
    // transformers prepends BOS for DeepSeek (tokenizer_config add_bos_token).
    EXPECT_EQ(t.encode(text, true), expected["with_bos_transformers_py"][i].get<std::vector<int32_t>>()) << i;
  }
  // Samples where regex engines legitimately differ (data/tokenizers.tar.xz: tokenizers/README.md).
  std::cout << "[" << name << "] divergent samples differing from HF: " << divergent_mismatches << " of 10\n";
}

TEST_P(RealTokenizer, DecodesBackToTheInput) {
  const std::string name = GetParam();
  const Tokenizer& t = tokenizer(name);
  for (const auto& s : read_json_file(data_dir() + "/samples.json")) {
    const std::string text = s.get<std::string>();
    // Qwen3 normalises to NFC, so its round trip holds modulo NFC.
    EXPECT_EQ(t.decode(t.encode(text)), name == "qwen3" ? nfc(text) : text);
  }
}

TEST_P(RealTokenizer, RandomBytesRoundTripThroughTheByteMap) {
  const Tokenizer& t = tokenizer(GetParam());
  std::mt19937 rng(42);
  for (int iter = 0; iter < 300; ++iter) {
    std::string bytes(1 + rng() % 40, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : 0x20 + rng() % 95);
    const auto ids = t.encode(bytes);
    EXPECT_EQ(t.decode_bytes(ids), GetParam() == "qwen3" && complete_utf8_prefix(bytes) == bytes.size() ? nfc(bytes) : bytes)
        << "iteration " << iter;
    EXPECT_EQ(t.decode(ids), utf8_lossy(t.decode_bytes(ids)));
  }
}

TEST_P(RealTokenizer, SpecialTokensInsideTextAndSkipping) {
  const Tokenizer& t = tokenizer(GetParam());
  const std::string eos = GetParam() == "qwen3" ? "<|im_end|>" : "<｜end▁of▁sentence｜>";
  const int32_t eos_id = *t.token_to_id(eos);
  const auto ids = t.encode("Hi" + eos + "there");
  ASSERT_NE(std::find(ids.begin(), ids.end(), eos_id), ids.end());
  EXPECT_EQ(t.decode(ids), "Hi" + eos + "there");
  EXPECT_EQ(t.decode(ids, /*skip_special=*/true), "Hithere");
  expect_error([&] { t.decode({t.vocab_size()}); }, "not in the vocabulary");
  expect_error([&] { t.decode({-1}); }, "not in the vocabulary");
}

TEST_P(RealTokenizer, StreamingDecodeNeverSplitsACharacter) {
  const Tokenizer& t = tokenizer(GetParam());
  for (const auto& s : read_json_file(data_dir() + "/samples.json")) {
    const auto ids = t.encode(s.get<std::string>());
    StreamDecoder stream(t, false);
    std::string joined;
    for (int32_t id : ids) {
      const std::string piece = stream.push(id);
      EXPECT_EQ(complete_utf8_prefix(piece), piece.size());
      EXPECT_EQ(utf8_lossy(piece), piece) << "emitted a broken UTF-8 sequence";
      joined += piece;
    }
    joined += stream.finish();
    EXPECT_EQ(joined, t.decode(ids));
  }
}

INSTANTIATE_TEST_SUITE_P(DeepSeekAndQwen, RealTokenizer, ::testing::Values("deepseek_v3", "qwen3"));

nlohmann::json minimal_tokenizer() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_to_unicode(static_cast<uint8_t>(b))] = b;
  vocab["ab"] = 256;
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array({"a b"})}}},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"added_tokens", nlohmann::json::array()}};
}

TEST(Tokenizer, MergesAsStringsOrPairsAndTheMergeOrder) {
  auto j = minimal_tokenizer();
  EXPECT_EQ(Tokenizer::from_json(j, "t").encode("abab"), (std::vector<int32_t>{256, 256}));
  j["model"]["merges"] = nlohmann::json::array({nlohmann::json::array({"a", "b"})});
  EXPECT_EQ(Tokenizer::from_json(j, "t").encode("xab"), (std::vector<int32_t>{'x', 256}));
}

TEST(Tokenizer, BytesTheVocabularyLacksAreDroppedAsHfTokenizersDrops) {
  // As HF tokenizers' BPE without unk_token or byte fallback (checked with tokenizers 0.23): the
  // byte is left out and its neighbours merge across it.
  auto j = minimal_tokenizer();
  j["model"]["vocab"].erase(byte_to_unicode('x'));
  const auto t = Tokenizer::from_json(j, "t");
  EXPECT_EQ(t.encode("axb"), (std::vector<int32_t>{256}));
  EXPECT_EQ(t.encode("x"), (std::vector<int32_t>{}));
  EXPECT_EQ(t.encode("xa"), (std::vector<int32_t>{'a'}));
}

TEST(Tokenizer, BadFilesAreErrorsNamingTheComponent) {
  auto j = minimal_tokenizer();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_error([&] { Tokenizer::from_json(j, "tok.json"); }, "tok.json: pre_tokenizer type 'Whitespace'");
  j = minimal_tokenizer();
  j["model"]["merges"] = nlohmann::json::array({"a zz"});
  expect_error([&] { Tokenizer::from_json(j, "tok.json"); }, "merge 0 ('a' 'zz') references a token");
  j = minimal_tokenizer();
  j["normalizer"] = {{"type", "Lowercase"}};
  expect_error([&] { Tokenizer::from_json(j, "tok.json"); }, "normalizer type 'Lowercase'");
  j = minimal_tokenizer();
  j["decoder"] = {{"type", "WordPiece"}};
  expect_error([&] { Tokenizer::from_json(j, "tok.json"); }, "decoder type 'WordPiece'");
  j = minimal_tokenizer();
  for (int b = 0; b < 200; ++b) j["model"]["vocab"].erase(byte_to_unicode(static_cast<uint8_t>(b)));
  expect_error([&] { Tokenizer::from_json(j, "tok.json"); }, "lacks the byte-level characters of 200 of the 256");
  j = minimal_tokenizer();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "([a"}}}, {"behavior", "Isolated"}};
  expect_error([&] { Tokenizer::from_json(j, "tok.json"); }, "does not compile");
  const std::string bad = ::testing::TempDir() + "/bad_tokenizer.json";
  std::ofstream(bad) << "{\"model\": {";
  expect_error([&] { Tokenizer::load(bad); }, "bad_tokenizer.json: invalid JSON");
}

}  // namespace
}  // namespace r1

namespace r1 {
namespace {

// Unicode's "maximal subpart" replacement (what Rust's from_utf8_lossy and so HF's decode do):
// examples from Unicode 15, section 3.9, table 3-8 and around it.
TEST(Utf8Lossy, OneReplacementPerMaximalSubpart) {
  const std::string R = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8_lossy("\xE2\x82" "a"), R + "a");           // truncated 3-byte sequence: one
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), R);                  // truncated 4-byte sequence: one
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), R + R);                  // C0 never starts a sequence
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), R + R + R);          // surrogate: ED needs 80..9F next
  EXPECT_EQ(utf8_lossy("\xF0\x80\x80"), R + R + R);          // F0 needs 90..BF next
  EXPECT_EQ(utf8_lossy("\xF4\x90\x80\x80"), R + R + R + R);  // past U+10FFFF
  EXPECT_EQ(utf8_lossy("a\xE2\x82\xAC" "b"), "a\xE2\x82\xAC" "b");  // valid text untouched
  EXPECT_EQ(utf8_lossy(R), R);
}

}  // namespace
}  // namespace r1
