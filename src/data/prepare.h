// r1 data prepare: documents -> token shards. Each document is encoded (BOS first when the
// tokenizer adds one, EOS after), on all cores, in input order. Torch-free.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace r1 {

struct PrepareOptions {
  std::string field = "text";     // JSONL field holding a document (files ending .jsonl)
  uint64_t shard_tokens = 100'000'000;
  int threads = 0;                // 0 = all cores
  bool skip_bad_lines = false;    // count and skip malformed JSONL lines instead of failing
  std::string eos;                // EOS token text; default: the tokenizer_config.json's
  // Fill-in-the-middle (data/fim.h): share of documents rewritten in PSM order; DeepSeek-Coder
  // used 0.5. Needs the tokenizer's FIM tokens.
  double fim_rate = 0;
  uint64_t fim_seed = 0;
  std::function<void(const std::string&, uint64_t, uint64_t, const std::string&)> progress;
};

struct PrepareSummary {
  uint64_t documents = 0, tokens = 0, bad_lines = 0, bytes = 0;
  size_t shards = 0;
};

// Inputs are files or directories (all files below, sorted); *.jsonl files hold one document
// per line in `field`, other files are one document each. Writes out_dir/shard-NNNNN.bin and
// out_dir/manifest.json.
PrepareSummary prepare_shards(const Tokenizer& tokenizer, const std::vector<std::string>& inputs,
                              const std::string& out_dir, const PrepareOptions& options);

}  // namespace r1
