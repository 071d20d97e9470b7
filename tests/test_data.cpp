// Token shards, the mixture reader and the LR schedules.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "data/mixture.h"
#include "data/prepare.h"
#include "tokenizer/trainer.h"
#include "train/batch_source.h"
#include "expect_error.h"
#include "test_data_dir.h"
#include "train/lr_schedule.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

using testing::expect_error;

const Tokenizer& deepseek() { return testing::deepseek_v3_tokenizer(); }

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::path(::testing::TempDir()) / ("data_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// A JSONL corpus of `n` short documents with a recognisable tag.
fs::path write_corpus(const fs::path& dir, const std::string& tag, int n) {
  fs::path f = dir / (tag + ".jsonl");
  std::ofstream out(f);
  for (int i = 0; i < n; ++i) out << nlohmann::json{{"text", tag + " document number " + std::to_string(i) + "."}}.dump() << "\n";
  return f;
}

TEST(TokenShards, PreparedTokensAreTheDocumentsWithBosAndEos) {
  fs::path dir = temp_dir("prep");
  fs::path corpus = write_corpus(dir, "alpha", 300);
  PrepareOptions opts;
  opts.shard_tokens = 1000;  // several shards
  const PrepareSummary s = prepare_shards(deepseek(), {corpus.string()}, (dir / "out").string(), opts);
  EXPECT_EQ(s.documents, 300u);
  EXPECT_GT(s.shards, 2u);
  std::vector<int32_t> want;
  for (int i = 0; i < 300; ++i) {
    want.push_back(*deepseek().bos_id());  // DeepSeek's tokenizer_config adds BOS
    auto ids = deepseek().encode("alpha document number " + std::to_string(i) + ".");
    want.insert(want.end(), ids.begin(), ids.end());
    want.push_back(*deepseek().eos_id());
  }
  TokenStream stream((dir / "out").string(), deepseek().fingerprint());
  ASSERT_EQ(stream.size(), want.size());
  std::vector<int32_t> got(want.size() + 5);
  stream.read(0, got.size(), got.data());  // across every shard boundary, then wrapping around
  EXPECT_TRUE(std::equal(want.begin(), want.end(), got.begin()));
  EXPECT_EQ(std::vector<int32_t>(got.end() - 5, got.end()), std::vector<int32_t>(want.begin(), want.begin() + 5));
}

TEST(TokenShards, RefusesOtherTokenizersAndBrokenFiles) {
  fs::path dir = temp_dir("refuse");
  prepare_shards(deepseek(), {write_corpus(dir, "beta", 20).string()}, (dir / "out").string(), {});
  expect_error([&] { TokenStream((dir / "out").string(), deepseek().fingerprint() + 1); }, "different tokenizer");
  const fs::path shard = dir / "out" / "shard-00000.bin";
  fs::resize_file(shard, fs::file_size(shard) - 3);
  expect_error([&] { TokenStream((dir / "out").string(), 0); }, "shard-00000.bin: header says");
  std::ofstream(shard, std::ios::binary) << std::string(100, 'x');  // long enough for a header
  expect_error([&] { TokenStream((dir / "out").string(), 0); }, "bad magic");
}

TEST(TokenShards, BadJsonlLinesAreNamedOrCounted) {
  fs::path dir = temp_dir("bad");
  fs::path f = dir / "mixed.jsonl";
  std::ofstream(f) << "{\"text\": \"fine\"}\n{\"text\": \n{\"body\": \"x\"}\n{\"text\": \"also fine\"}\n";
  expect_error([&] { prepare_shards(deepseek(), {f.string()}, (dir / "a").string(), {}); }, "mixed.jsonl:2: invalid JSON");
  PrepareOptions skip;
  skip.skip_bad_lines = true;
  const PrepareSummary s = prepare_shards(deepseek(), {f.string()}, (dir / "b").string(), skip);
  EXPECT_EQ(s.documents, 2u);
  EXPECT_EQ(s.bad_lines, 2u);
  PrepareOptions eos;
  eos.eos = "<not-a-token>";
  expect_error([&] { prepare_shards(deepseek(), {f.string()}, (dir / "c").string(), eos); }, "--eos '<not-a-token>'");
}

TEST(Mixture, ProportionsFollowTheWeightsAndResumeIsExact) {
  fs::path dir = temp_dir("mix");
  prepare_shards(deepseek(), {write_corpus(dir, "code", 200).string()}, (dir / "code").string(), {});
  prepare_shards(deepseek(), {write_corpus(dir, "prose", 200).string()}, (dir / "prose").string(), {});
  const auto sources = parse_mixture((dir / "code").string() + ":0.87," + (dir / "prose").string() + ":0.13");
  MixtureReader reader(sources, 16, 7, deepseek().fingerprint());
  int from_code = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    size_t source = 9;
    reader.next(&source);
    from_code += source == 0;
  }
  EXPECT_NEAR(from_code / double(n), 0.87, 0.01);

  MixtureReader a(sources, 16, 3, deepseek().fingerprint()), b(sources, 16, 3, deepseek().fingerprint());
  for (int i = 0; i < 25; ++i) a.next();
  const auto saved = nlohmann::json::parse(a.state().dump());  // through JSON, as a checkpoint stores it
  std::vector<std::vector<int32_t>> expected;
  for (int i = 0; i < 40; ++i) expected.push_back(a.next());
  b.restore(saved);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(b.next(), expected[i]) << "sequence " << i << " after resume";
  MixtureReader other_seed(sources, 16, 4, deepseek().fingerprint());
  expect_error([&] { other_seed.restore(saved); }, "different mixture");
  expect_error([] { parse_mixture("dir:abc"); }, "not a number");
}

TEST(LrSchedule, MatchesTheFormulas) {
  LrSchedule s;
  s.max_lr = 4.2e-4;
  s.warmup_steps = 2000;
  s.total_steps = 10000;
  s.kind = "multistep";  // DeepSeek LLM: x0.316 at 80%, x0.1 at 90%
  EXPECT_DOUBLE_EQ(s.at(0), 4.2e-4 / 2000);
  EXPECT_DOUBLE_EQ(s.at(999), 4.2e-4 * 1000 / 2000);
  EXPECT_DOUBLE_EQ(s.at(2000), 4.2e-4);
  EXPECT_DOUBLE_EQ(s.at(7999), 4.2e-4);
  EXPECT_DOUBLE_EQ(s.at(8000), 4.2e-4 * 0.316);
  EXPECT_DOUBLE_EQ(s.at(9000), 4.2e-4 * 0.1);
  s.kind = "cosine";
  s.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(s.at(2000), 4.2e-4);
  EXPECT_NEAR(s.at(6000), 4.2e-5 + 0.5 * (4.2e-4 - 4.2e-5), 1e-12);  // halfway through the decay
  EXPECT_NEAR(s.at(10000), 4.2e-5, 1e-12);
  s.kind = "wsd";
  s.decay_fraction = 0.2;
  EXPECT_DOUBLE_EQ(s.at(7999), 4.2e-4);
  EXPECT_NEAR(s.at(9000), 4.2e-4 + (4.2e-5 - 4.2e-4) * 0.5, 1e-12);
  s.kind = "constant";
  EXPECT_DOUBLE_EQ(s.at(9999), 4.2e-4);
  s.kind = "linear-ish";
  expect_error([&] { s.at(0); }, "unknown LR schedule");
}

TEST(Fim, PreparedDocumentsAreRewrittenInPsmOrderAtTheRate) {
  fs::path dir = temp_dir("fim");
  fs::path f = dir / "code.jsonl";
  std::vector<std::string> docs;
  {
    std::ofstream out(f);
    for (int i = 0; i < 400; ++i) {
      docs.push_back("def f" + std::to_string(i) + "(x):\n    return x * " + std::to_string(i) + "  # π ≈ 3.14\n");
      out << nlohmann::json{{"text", docs.back()}}.dump() << "\n";
    }
  }
  PrepareOptions opts;
  opts.fim_rate = 0.5;
  prepare_shards(deepseek(), {f.string()}, (dir / "out").string(), opts);
  TokenStream stream((dir / "out").string(), deepseek().fingerprint());
  std::vector<int32_t> all(stream.size());
  stream.read(0, all.size(), all.data());
  const auto id = [&](const char* t) { return *deepseek().token_to_id(t); };
  const int32_t begin = id("<｜fim▁begin｜>"), hole = id("<｜fim▁hole｜>"), end = id("<｜fim▁end｜>");
  // Documents: BOS ... EOS. A FIM document is BOS begin P hole S end M EOS, and P + M + S is the
  // original text (cut at character boundaries, so π and ≈ survive).
  size_t fim_docs = 0, d = 0;
  for (size_t i = 0; i < all.size(); ++d) {
    ASSERT_EQ(all[i], *deepseek().bos_id());
    const size_t eos = std::find(all.begin() + i, all.end(), *deepseek().eos_id()) - all.begin();
    std::vector<int32_t> doc(all.begin() + i + 1, all.begin() + eos);
    i = eos + 1;
    if (!doc.empty() && doc[0] == begin) {
      ++fim_docs;
      const auto at = [&](int32_t t) { return std::find(doc.begin(), doc.end(), t) - doc.begin(); };
      const long h = at(hole), e = at(end);
      ASSERT_TRUE(h < e && e < static_cast<long>(doc.size()));
      const std::string p = deepseek().decode({doc.begin() + 1, doc.begin() + h});
      const std::string s = deepseek().decode({doc.begin() + h + 1, doc.begin() + e});
      const std::string m = deepseek().decode({doc.begin() + e + 1, doc.end()});
      EXPECT_EQ(p + m + s, docs[d]);
    } else {
      EXPECT_EQ(deepseek().decode(doc), docs[d]);
    }
  }
  EXPECT_EQ(d, docs.size());
  EXPECT_NEAR(fim_docs / 400.0, 0.5, 0.08);
  // A tokenizer without FIM tokens is refused.
  opts.fim_rate = 0.5;
  TrainOptions no_fim;
  no_fim.special_tokens = {"</s>"};
  const Tokenizer plain = Tokenizer::from_json(build_tokenizer_json({}, no_fim), "test");
  opts.eos = "</s>";
  expect_error([&] { prepare_shards(plain, {f.string()}, (dir / "out2").string(), opts); }, "no fill-in-the-middle");
}

TEST(ConversationSource, TrainsOnlyOnAssistantTokens) {
  fs::path dir = temp_dir("sft");
  fs::path f = dir / "chat.jsonl";
  std::ofstream(f) << R"({"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."}]})"
                   << "\n";
  ConversationSource source(f.string(), deepseek(), ChatFormat::kDeepSeekV3, 64, 1, false);
  auto [tokens, mask, segments] = source.next(1);
  ASSERT_EQ(mask.size(1), tokens.size(1) - 1);
  std::vector<int32_t> trained;
  for (int64_t t = 0; t < mask.size(1); ++t)
    if (mask[0][t].item<float>() > 0) trained.push_back(static_cast<int32_t>(tokens[0][t + 1].item<int64_t>()));
  // Exactly the answer and its end-of-turn token are targets; the question and the template are not.
  EXPECT_EQ(deepseek().decode(trained), "It is 4.<｜end▁of▁sentence｜>");
  // Truncation: a sequence length shorter than the conversation cuts rows to seq_len + 1 tokens.
  ConversationSource short_rows(f.string(), deepseek(), ChatFormat::kDeepSeekV3, 4, 1, false);
  EXPECT_EQ(short_rows.next(2).tokens.size(1), 5);
  // Packing: whole conversations per row while they fit, each its own segment, no target that
  // crosses from one conversation into the next; the targets over an epoch are those unpacked.
  fs::path many = dir / "many.jsonl";
  {
    std::ofstream out(many);
    for (int i = 0; i < 6; ++i)
      out << R"({"messages": [{"role": "user", "content": "Q)" << i << R"("}, {"role": "assistant", "content": "A)"
          << std::string(i + 1, 'x') << R"("}]})" << "\n";
  }
  ConversationSource unpacked(many.string(), deepseek(), ChatFormat::kDeepSeekV3, 32, 7, false);
  ConversationSource packed(many.string(), deepseek(), ChatFormat::kDeepSeekV3, 32, 7, false, "", std::nullopt, true);
  const TrainBatch p = packed.next(1);
  ASSERT_TRUE(p.segments.defined());
  EXPECT_EQ(p.tokens.size(1), 33);
  const int64_t docs = p.segments.max().item<int64_t>() + 1;
  ASSERT_GT(docs, 2);  // several conversations in the row (six of them would not fit)
  ASSERT_LT(docs, 6);
  EXPECT_EQ(packed.state()["index"], docs);  // exactly those were used
  const TrainBatch u = unpacked.next(docs);  // the same conversations, one per row
  EXPECT_EQ(p.mask.sum().item<float>(), u.mask.sum().item<float>());
  for (int64_t r = 0; r < 1; ++r)
    for (int64_t t = 0; t + 1 < 32; ++t)
      if (p.mask[r][t].item<float>() > 0) EXPECT_EQ(p.segments[r][t].item<int64_t>(), p.segments[r][t + 1].item<int64_t>());
  std::ofstream(dir / "bad.jsonl") << "{\"messages\": [{\"role\": \"user\"}]}\n";
  expect_error([&] { ConversationSource((dir / "bad.jsonl").string(), deepseek(), ChatFormat::kDeepSeekV3, 8, 1, false); },
               "bad.jsonl:1: message 0 needs");
}

}  // namespace
}  // namespace r1
