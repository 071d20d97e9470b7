// One decoding step's attention on the CPU, fused into one pass per (sequence, kv head): write the
// new key/value into the cache at the sequence's position, then attend over that sequence's own
// prefix 0..position.
//
// Why: the composite path (index_put_ into the cache, then masked matmul / softmax / matmul over
// the longest prefix in the batch) spent most of a small model's decode step outside the
// projections: index_put_'s generic kernel for a few KB of new rows, two batched matrix-vector
// products over every row's padded prefix, and, for a bf16 cache, converting the whole prefix to
// fp32 every layer. Here each row reads only its own prefix once, bf16 widened in cache-sized
// pieces, with fp32 scores and accumulation (docs/benchmarks.md has the A/B).
#pragma once
#include <ATen/ATen.h>

namespace r1::fused {

// True when decode_attention handles queries like `q` (dtype, device) over this cache: CPU, float32
// or bfloat16 queries and cache, the cache's last dimension contiguous, and R1_NO_FUSED_OPS unset
// (A/B measurements).
bool decode_attention_applies(const at::Tensor& q, const at::Tensor& cache_k);

// q [B, H, 1, D]; k_new, v_new [B, KV, 1, D] (H a multiple of KV: grouped-query attention, head h
// reads kv head h / (H / KV)); cache_k, cache_v [B, KV, capacity, D]; positions [B, 1] int64 (CPU):
// row b writes at positions[b] and attends to entries 0..positions[b]. Returns [B, H, 1, D] in q's
// dtype, softmax(q k^T / sqrt(D)) v.
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_new, const at::Tensor& v_new,
                               at::Tensor& cache_k, at::Tensor& cache_v, const at::Tensor& positions);

}  // namespace r1::fused
