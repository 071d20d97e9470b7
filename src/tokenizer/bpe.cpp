#include "tokenizer/bpe.h"

#include <algorithm>
#include <atomic>

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace r1 {

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges,
                   const std::string& origin)
    : vocab_(std::move(vocab)), merges_(merges), ignore_merges_(ignore_merges) {
  static std::atomic<uint64_t> next_serial{1};
  serial_ = next_serial++;
  int32_t max_id = -1;
  for (const auto& [tok, id] : vocab_) {
    if (id < 0) throw Error(origin + ": vocabulary id " + std::to_string(id) + " of '" + tok + "' is negative");
    max_id = std::max(max_id, id);
  }
  id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [tok, id] : vocab_) id_to_token_[id] = tok;
  // Real vocabularies may lack a few byte characters (SmolLM2's has no token for 21 bytes); like HF
  // tokenizers' BPE without unk_token or byte fallback, encoding drops such bytes. A vocabulary
  // without most of them is not byte-level at all.
  int missing = 0;
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(byte_to_unicode(static_cast<uint8_t>(b)));
    byte_id_[b] = it == vocab_.end() ? -1 : it->second;
    missing += it == vocab_.end();
  }
  if (missing > 128)
    throw Error(origin + ": the vocabulary lacks the byte-level characters of " + std::to_string(missing) +
                " of the 256 bytes (not a byte-level BPE vocabulary?)");
  merge_of_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& [a, b] = merges[r];
    auto ia = vocab_.find(a), ib = vocab_.find(b), im = vocab_.find(a + b);
    if (ia == vocab_.end() || ib == vocab_.end() || im == vocab_.end())
      throw Error(origin + ": merge " + std::to_string(r) + " ('" + a + "' '" + b + "') references a token " +
                  "that is not in the vocabulary");
    merge_of_.emplace(key(ia->second, ib->second), Merge{static_cast<int32_t>(r), im->second});  // first rank wins
  }
}

const BpeModel::Merge* BpeModel::find_merge(int32_t a, int32_t b) const {
  auto it = merge_of_.find(key(a, b));
  return it == merge_of_.end() ? nullptr : &it->second;
}

const std::string* BpeModel::token(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(id_to_token_.size()) || id_to_token_[id].empty()) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::encode(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() <= 1 || piece.size() > kMaxCachedPieceBytes) {
    merge_piece(piece, out);
    return;
  }
  Cache& cache = thread_cache();
  std::string key(piece);
  auto it = cache.find(key);
  if (it != cache.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  const size_t first = out.size();
  merge_piece(piece, out);
  if (cache.size() >= kCacheCapacity) cache.clear();
  cache.emplace(std::move(key), std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
}

BpeModel::Cache& BpeModel::thread_cache() const {
  thread_local std::unordered_map<uint64_t, Cache> caches;
  return caches[serial_];
}

void BpeModel::merge_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (ignore_merges_) {  // Llama-3 style: a piece that is itself a token is emitted whole
    std::string mapped;
    append_byte_level(piece, mapped);
    auto it = vocab_.find(mapped);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  struct Symbol {
    int32_t id;
    int prev, next;
    bool alive;
  };
  // Candidate merges: (rank, left position, merged id); lowest rank first, then leftmost.
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  // Buffers reused across pieces on this thread: no allocation per piece once warm.
  thread_local std::vector<Symbol> sym;
  thread_local std::vector<Candidate> heap;  // a min-heap through std::push_heap/pop_heap
  sym.clear();
  for (char c : piece)  // one symbol per byte; bytes the vocabulary lacks are left out
    if (const int32_t id = byte_id_[static_cast<uint8_t>(c)]; id >= 0) {
      const int i = static_cast<int>(sym.size());
      sym.push_back({id, i - 1, i + 1, true});
    }
  const int n = static_cast<int>(sym.size());
  if (n <= 1) {
    if (n == 1) out.push_back(sym[0].id);
    return;
  }
  sym.back().next = -1;
  heap.clear();
  const std::greater<Candidate> later;
  auto push_pair = [&](int left) {
    if (left < 0 || sym[left].next < 0) return;
    if (const Merge* m = find_merge(sym[left].id, sym[sym[left].next].id)) {
      heap.push_back({m->rank, left, m->id});
      std::push_heap(heap.begin(), heap.end(), later);
    }
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& left = sym[c.pos];
    if (!left.alive || left.next < 0) continue;
    const Merge* m = find_merge(left.id, sym[left.next].id);
    if (!m || m->id != c.id) continue;  // stale: a neighbour changed since this was pushed
    Symbol& right = sym[left.next];
    left.id = c.id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = c.pos;
    push_pair(left.prev);
    push_pair(c.pos);
  }
  for (int i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace r1
