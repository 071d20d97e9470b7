#include "data/mixture.h"

#include <sstream>

#include "util/error.h"
#include "util/hash.h"

namespace r1 {

std::vector<MixtureSource> parse_mixture(const std::string& spec) {
  std::vector<MixtureSource> out;
  std::stringstream ss(spec);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.empty()) continue;
    MixtureSource s;
    const size_t colon = item.rfind(':');
    s.dir = colon == std::string::npos ? item : item.substr(0, colon);
    if (colon != std::string::npos) {
      try {
        size_t used = 0;
        s.weight = std::stod(item.substr(colon + 1), &used);
        if (used != item.size() - colon - 1) throw std::invalid_argument(item);
      } catch (const std::exception&) {
        throw Error("--data '" + item + "': the weight after ':' is not a number");
      }
    }
    if (!(s.weight > 0)) throw Error("--data '" + item + "': weights must be positive");
    out.push_back(s);
  }
  if (out.empty()) throw Error("--data names no shard directory");
  return out;
}

MixtureReader::MixtureReader(const std::vector<MixtureSource>& sources, int64_t seq_len, uint64_t seed,
                             uint64_t fingerprint)
    : seq_len_(seq_len), seed_(seed) {
  if (seq_len < 1) throw Error("sequence length must be positive");
  double total = 0;
  for (const auto& s : sources) total += s.weight;
  double acc = 0;
  for (const auto& s : sources) {
    streams_.push_back(std::make_unique<TokenStream>(s.dir, fingerprint));
    acc += s.weight / total;
    cumulative_.push_back(acc);
  }
  cumulative_.back() = 1.0;
  offsets_.assign(streams_.size(), 0);
}

size_t MixtureReader::pick_source(uint64_t index) const {
  const double u = static_cast<double>(splitmix64(seed_ ^ splitmix64(index)) >> 11) * 0x1.0p-53;  // uniform in [0, 1)
  for (size_t i = 0; i < cumulative_.size(); ++i)
    if (u < cumulative_[i]) return i;
  return cumulative_.size() - 1;
}

std::vector<int32_t> MixtureReader::next(size_t* source) {
  const size_t s = pick_source(index_++);
  std::vector<int32_t> seq(static_cast<size_t>(seq_len_) + 1);
  streams_[s]->read(offsets_[s], seq.size(), seq.data());
  offsets_[s] += static_cast<uint64_t>(seq_len_);
  if (source) *source = s;
  return seq;
}

nlohmann::json MixtureReader::state() const {
  return {{"index", index_}, {"offsets", offsets_}, {"seed", seed_}, {"seq_len", seq_len_}};
}

void MixtureReader::restore(const nlohmann::json& state) {
  if (state.value("seed", uint64_t(0)) != seed_ || state.value("seq_len", int64_t(0)) != seq_len_ ||
      !state.contains("offsets") || state["offsets"].size() != offsets_.size())
    throw Error("data position in the checkpoint belongs to a different mixture, seed or sequence length");
  index_ = state.at("index").get<uint64_t>();
  offsets_ = state.at("offsets").get<std::vector<uint64_t>>();
}

}  // namespace r1
