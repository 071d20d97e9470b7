// GRPO's training attention over shared prompts, fused for the CPU (forward and backward).
//
// TransformerImpl::forward_shared_prefix runs each group's prompt once and lets its completions
// attend to it. Through SDPA that needs a padded [rows, heads, length, D] layout: zeros and
// index_copy to spread the real tokens into it (three times a layer), the prompt keys gathered per
// completion and concatenated with its own, a mask, and the reverse of all that in the backward.
// On the demo's policy those ops, not the attention's arithmetic, were most of the attention's
// cost (~15% of a GRPO training pass besides SDPA's own ~13%). This kernel works on the real
// tokens where they lie: each query walks its prompt's visible keys, then its own segment's keys up
// to itself (docs/grpo.md has the A/B). One key at a time: it wins only where queries see few keys
// (prefix_attention_pays), so long prompts keep SDPA.
//
// Layout: tokens are laid out as segments, the P prompts first, then the R completions. Prompt
// segment p is causal within itself; completion segment r sees the first `visible` tokens of its
// group's prompt segment, then itself causally. The backward is race-free without atomics: work
// is split by (kv head, prompt group), and a group's queries write only to its own keys.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace r1::fused {

struct PrefixLayout {
  std::vector<int64_t> prompt_start, prompt_len, prompt_visible;   // [P]: segment, and keys completions see
  std::vector<int64_t> completion_start, completion_len, group;    // [R]: segment, and its prompt
  int64_t tokens = 0;                                              // total tokens (the segments' sum)

  // The segments laid end to end in this order: prompts, then completions.
  static PrefixLayout of(const std::vector<int64_t>& prompt_len, const std::vector<int64_t>& prompt_visible,
                         const std::vector<int64_t>& completion_len, const std::vector<int64_t>& group);
};

// True when prefix_attention handles these queries: float32 on the CPU, R1_NO_FUSED_OPS unset.
bool prefix_attention_applies(const torch::Tensor& q);

// True when the kernel is expected to beat SDPA over the padded layout: its queries see 32 keys or
// fewer on average. The kernel walks keys one at a time (two dot products and three vector updates
// per key in the backward), where SDPA multiplies blocks, so it wins on short prompts and answers
// (the demo's ~23 keys per query: training pass 1.13x faster) and loses on long ones (random
// initialisation's 72-token answers, ~44 keys: 1.08x slower; the R1-Zero template's ~300-token
// prompt, ~340 keys: 1.45x slower).
bool prefix_attention_pays(const PrefixLayout& layout);

// q [T, H, D], k and v [T, KV, D] (H a multiple of KV), T = layout.tokens. Returns [T, H, D]:
// each query's softmax(q k^T / sqrt(D)) v over the keys the layout lets it see. Differentiable
// with respect to q, k and v. Throws on a layout that does not tile the T tokens.
torch::Tensor prefix_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const PrefixLayout& layout);

}  // namespace r1::fused
