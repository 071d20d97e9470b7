// Byte-level BPE model: vocabulary, merge ranks, and the merge loop. A piece's bytes map to the
// ids of their byte characters, then the adjacent pair with the lowest merge rank is merged
// (leftmost first) until none applies. The loop keeps the symbols as a linked list and the
// candidate pairs in a min-heap, so a piece of n bytes costs O(n log n). Torch-free.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace r1 {

class BpeModel {
 public:
  // vocab: token string (byte-level characters) -> id; merges in rank order, as token pairs.
  // Throws r1::Error for merges whose parts or result are not in the vocabulary, and for a
  // vocabulary that lacks one of the 256 byte characters.
  BpeModel(std::unordered_map<std::string, int32_t> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
           bool ignore_merges, const std::string& origin);

  // Appends the ids of one pre-tokenized piece (raw bytes). Frequent pieces come from a cache.
  void encode(std::string_view piece, std::vector<int32_t>& out) const;

  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }
  const std::vector<std::pair<std::string, std::string>>& merges() const { return merges_; }
  // Token string of an id, or nullptr when the model has no such id.
  const std::string* token(int32_t id) const;
  int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }
  bool ignore_merges() const { return ignore_merges_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  static uint64_t key(int32_t a, int32_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }
  const Merge* find_merge(int32_t a, int32_t b) const;
  void merge_piece(std::string_view piece, std::vector<int32_t>& out) const;

  // Piece -> ids, one cache per thread (no locking; batch encoding scales with threads). Text is
  // Zipfian: a few thousand pieces cover most of it. A cache is cleared when full.
  static constexpr size_t kCacheCapacity = 100000;
  static constexpr size_t kMaxCachedPieceBytes = 64;
  using Cache = std::unordered_map<std::string, std::vector<int32_t>>;
  Cache& thread_cache() const;
  uint64_t serial_;  // identifies this model's caches (an address could be reused by a later model)

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;  // "" for ids the vocabulary does not use
  std::vector<std::pair<std::string, std::string>> merges_;
  std::unordered_map<uint64_t, Merge> merge_of_;
  std::array<int32_t, 256> byte_id_{};
  bool ignore_merges_;
};

}  // namespace r1
