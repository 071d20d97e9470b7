// A weighted mixture of prepared shard directories (e.g. DeepSeek-Coder's 87% code / 10% code-
// related English / 3% Chinese), yielding packed fixed-length training sequences. Sequence i
// comes from a source picked by a hash of (seed, i) against the weights, so the order depends
// only on the seed, and the whole position is (next sequence index, offset in each source): the
// checkpoint stores it and a resumed run continues exactly where it stopped. Torch-free.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/token_shards.h"

namespace r1 {

struct MixtureSource {
  std::string dir;
  double weight = 1.0;
};

// "dirA:0.87,dirB:0.10,dirC" (weight 1 when omitted).
std::vector<MixtureSource> parse_mixture(const std::string& spec);

class MixtureReader {
 public:
  MixtureReader(const std::vector<MixtureSource>& sources, int64_t seq_len, uint64_t seed,
                uint64_t tokenizer_fingerprint);
  // One sequence of seq_len + 1 tokens (inputs are [0, seq_len), targets [1, seq_len]), and the
  // index of the source it came from. Consecutive sequences of a source overlap by one token,
  // so every token is a target once per epoch.
  std::vector<int32_t> next(size_t* source = nullptr);
  nlohmann::json state() const;
  void restore(const nlohmann::json& state);  // throws r1::Error for a state of another mixture
  size_t num_sources() const { return streams_.size(); }

 private:
  size_t pick_source(uint64_t index) const;
  std::vector<std::unique_ptr<TokenStream>> streams_;
  std::vector<double> cumulative_;  // normalised cumulative weights
  std::vector<uint64_t> offsets_;
  int64_t seq_len_;
  uint64_t seed_, index_ = 0;
};

}  // namespace r1
