// The fused CPU decoding attention (model/decode_attention.h) against a plain reference computed
// here in float64: write the new key/value at each row's position, softmax(q k^T / sqrt(D)) v over
// that row's own prefix only. Cache entries past a row's position hold huge values, so attending
// to them (a wrong mask) or writing elsewhere would show.
#include <gtest/gtest.h>

#include <cmath>

#include "model/decode_attention.h"

namespace r1 {
namespace {

struct Case {
  int64_t B, H, KV, D, capacity;
  std::vector<int64_t> positions;
  torch::ScalarType cache_dtype;
  int threads;
};

void check(const Case& c) {
  SCOPED_TRACE("B=" + std::to_string(c.B) + " H=" + std::to_string(c.H) + " KV=" + std::to_string(c.KV) +
               " D=" + std::to_string(c.D) + " dtype=" + std::string(c10::toString(c.cache_dtype)) +
               " threads=" + std::to_string(c.threads));
  const int before = at::get_num_threads();
  at::set_num_threads(c.threads);
  torch::manual_seed(7);
  auto q = torch::randn({c.B, c.H, 1, c.D}), k_new = torch::randn({c.B, c.KV, 1, c.D}),
       v_new = torch::randn({c.B, c.KV, 1, c.D});
  auto cache_k = (torch::randn({c.B, c.KV, c.capacity, c.D}) * 2).to(c.cache_dtype);
  auto cache_v = torch::randn({c.B, c.KV, c.capacity, c.D}).to(c.cache_dtype);
  for (int64_t b = 0; b < c.B; ++b) {  // beyond each row's position: values that must not be read
    const int64_t after = c.capacity - c.positions[b] - 1;
    if (after > 0) {
      cache_k[b].narrow(1, c.positions[b] + 1, after).fill_(1e4);
      cache_v[b].narrow(1, c.positions[b] + 1, after).fill_(-1e4);
    }
  }
  const auto k_before = cache_k.clone(), v_before = cache_v.clone();
  const auto positions = torch::tensor(c.positions, torch::kInt64).view({c.B, 1});

  ASSERT_TRUE(fused::decode_attention_applies(q, cache_k));
  const auto out = fused::decode_attention(q, k_new, v_new, cache_k, cache_v, positions);
  at::set_num_threads(before);

  ASSERT_EQ(out.sizes(), q.sizes());
  const int64_t G = c.H / c.KV;
  for (int64_t b = 0; b < c.B; ++b) {
    const int64_t p = c.positions[b];
    // The cache: row b changed at position p only, to the new key/value in the cache's dtype.
    auto expect_k = k_before[b].clone(), expect_v = v_before[b].clone();
    expect_k.select(1, p).copy_(k_new[b].select(1, 0).to(c.cache_dtype));
    expect_v.select(1, p).copy_(v_new[b].select(1, 0).to(c.cache_dtype));
    EXPECT_TRUE(torch::equal(cache_k[b], expect_k)) << "keys of row " << b;
    EXPECT_TRUE(torch::equal(cache_v[b], expect_v)) << "values of row " << b;
    for (int64_t h = 0; h < c.H; ++h) {
      const auto keys = expect_k[h / G].narrow(0, 0, p + 1).to(torch::kFloat64);    // [p+1, D]
      const auto values = expect_v[h / G].narrow(0, 0, p + 1).to(torch::kFloat64);  // [p+1, D]
      const auto scores = torch::mv(keys, q[b][h][0].to(torch::kFloat64)) / std::sqrt(static_cast<double>(c.D));
      const auto want = torch::mv(values.t(), torch::softmax(scores, 0));
      const double err = (out[b][h][0].to(torch::kFloat64) - want).abs().max().item<double>();
      EXPECT_LT(err, 1e-5) << "row " << b << " head " << h;
    }
  }
}

TEST(DecodeAttention, EqualsSoftmaxOverEachRowsOwnPrefixAndWritesTheCache) {
  check({3, 4, 2, 24, 40, {0, 7, 33}, torch::kFloat32, 2});  // GQA, D not a multiple of the vector width
  check({2, 3, 3, 16, 9, {8, 2}, torch::kFloat32, 1});       // MHA, a row at the last cache slot
}

TEST(DecodeAttention, EveryVectorisedHeadSizeAndHeadGroupMatchesTheReference) {
  // D = 16 NV takes the register paths (NV = 1-8): keys four at a time (prefix lengths of every
  // remainder mod 4 here), values for chunks of up to 4 heads (2 when D > 64).
  check({4, 7, 1, 32, 12, {0, 1, 2, 10}, torch::kFloat32, 2});   // 7 heads per kv head: chunks 4 + 3
  check({3, 6, 2, 64, 20, {3, 4, 17}, torch::kFloat32, 1});      // 3 heads per kv head, bench-m's shape
  check({2, 10, 2, 128, 9, {5, 8}, torch::kFloat32, 2});         // 5 per kv head at D = 128: 2 + 2 + 1
  check({2, 2, 2, 48, 7, {6, 1}, torch::kFloat32, 1});           // one head per kv head, D = 48
  check({2, 8, 2, 80, 11, {10, 7}, torch::kFloat32, 2});         // D = 80: 4 heads as 2 + 2
  check({2, 4, 2, 16, 6, {5, 3}, torch::kFloat32, 1});           // D = 16
  check({3, 6, 2, 64, 20, {19, 0, 9}, torch::kBFloat16, 2});     // bf16 widened rows, the same paths
}

TEST(DecodeAttention, Bfloat16CacheIsReadAndWrittenInBfloat16) {
  check({3, 4, 1, 32, 50, {5, 49, 20}, torch::kBFloat16, 2});
}

TEST(DecodeAttention, LongPrefixesSplitAcrossThreadsCombineExactly) {
  // One row, one kv head, 2 threads: the prefix is cut into pieces whose partial softmaxes combine.
  check({1, 2, 1, 32, 1200, {1100}, torch::kFloat32, 2});
  check({1, 2, 1, 32, 1200, {700}, torch::kBFloat16, 2});
  check({2, 4, 1, 16, 700, {650, 3}, torch::kFloat32, 4});  // a short row among split ones
}

TEST(DecodeAttention, BadShapesAreClearErrors) {
  auto q = torch::randn({2, 4, 1, 8}), kv = torch::randn({2, 2, 1, 8});
  auto cache = torch::zeros({2, 2, 5, 8});
  auto cache_v = cache.clone();
  EXPECT_THROW(fused::decode_attention(q, kv, kv, cache, cache_v, torch::tensor({{1}, {5}})), std::exception);
  auto wrong = torch::zeros({2, 2, 5, 4});
  EXPECT_THROW(fused::decode_attention(q, kv, kv, wrong, wrong, torch::tensor({{1}, {2}})), std::exception);
}

}  // namespace
}  // namespace r1
