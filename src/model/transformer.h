// The decoder, defined once in libtorch: the Llama architecture (DeepSeek LLM / Coder / Math, Qwen2 /
// R1-Distill) and DeepSeek-V2/V3's, whose layers attend through multi-head latent attention
// (latent_attention.h) and whose MLPs from layer first_k_dense_replace on are mixtures of experts
// (moe.h). Module and parameter names are Hugging Face's, so named_parameters() are exactly
// the tensor names of model.safetensors ("model.layers.0.self_attn.q_proj.weight", ...).
//
// Two entry points over the same weights:
//   forward()        full sequences, causal attention (training, scoring)
//   forward_cached() new tokens appended to a KvCache, each sequence at its own position
//                    (batched decoding of prompts of different lengths)
#pragma once
#include <functional>
#include <map>
#include <vector>

#include <torch/torch.h>

#include "model/config.h"
#include "model/latent_attention.h"
#include "model/modules.h"
#include "model/moe.h"
#include "model/rope.h"

namespace r1 {
namespace fused {
struct PrefixLayout;  // model/prefix_attention.h
}

// Keys and values of every layer for a batch of sequences: [B, kv_heads, capacity, head_dim].
// Each sequence's length is tracked by the caller (the `start` passed to forward_cached). With
// latent attention, k holds each token's latent and rotary key side by side, [B, 1, capacity,
// kv_lora_rank + qk_rope_head_dim], and v is empty: the values are the latent part of k
// (R1_NO_LATENT_CACHE=1 caches per-head keys and values instead, for comparison). `with_mtp` adds
// a layer after the stack's for the first multi-token prediction module (self-speculative decoding).
struct KvCache {
  KvCache(const ModelConfig& config, int64_t batch, int64_t capacity, torch::Device device, torch::ScalarType dtype,
          bool with_mtp = false);
  std::vector<torch::Tensor> k, v;
  int64_t batch() const { return k.empty() ? 0 : k[0].size(0); }
  int64_t capacity() const { return k.empty() ? 0 : k[0].size(2); }
  int64_t bytes() const;
};

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const ModelConfig& c, const torch::TensorOptions& options);
  // x [B, T, H]; cos/sin [B, 1, T, D]. Without a cache: causal attention over x itself. With one:
  // keys/values of x are written to layer `layer` at `cache_slots` = {batch rows [B, 1], positions
  // [B, T]} (built once per forward for all layers), and queries attend to cache entries
  // 0..position (mask [B, 1, T, used]; undefined: one token per row, attended by the fused CPU
  // kernel in decode_attention.h).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        KvCache* cache = nullptr, int64_t layer = 0,
                        const std::vector<at::indexing::TensorIndex>& cache_slots = {},
                        const torch::Tensor& mask = {}, int64_t used = 0);
  // TransformerImpl::forward_shared_prefix's attention. x [1, P*n + R*m, H]: the P prompt rows of
  // n tokens, then the R completion rows of m tokens, flat; cos/sin [1, 1, P*n + R*m, D]. Prompts
  // attend causally to themselves; completion r attends to the keys of prompt group[r] that `mask`
  // [R, 1, m, n + m] lets it see, then causally to its own. With `keep` (int64 [K]), x and cos/sin
  // hold only those of the P*n + R*m positions (the real tokens, padding left out): projections run
  // on them alone and only the attention sees the padded layout. With `layout` (CPU float32) the
  // fused kernel of model/prefix_attention.h attends over x's tokens where they lie, with no padded
  // layout, mask or keep. Returns [1, positions of x, H].
  torch::Tensor forward_shared_prefix(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                      int64_t P, int64_t n, const torch::Tensor& group, int64_t m,
                                      const torch::Tensor& mask, const torch::Tensor& keep = {},
                                      const fused::PrefixLayout* layout = nullptr);
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // Qwen3 only: per head, before RoPE

 private:
  // Queries and keys of x [B, T, H] rotated (after Qwen3's per-head norms), in the projections'
  // [B, T, heads, D] layout.
  std::pair<torch::Tensor, torch::Tensor> rotated_qk(const torch::Tensor& x, const torch::Tensor& cos,
                                                     const torch::Tensor& sin);
  int64_t heads_, kv_heads_, head_dim_;
};
TORCH_MODULE(Attention);

// The output head's norm of a multi-token prediction module ("shared_head.norm"; the head itself
// is the model's).
class MtpHeadImpl : public torch::nn::Module {
 public:
  MtpHeadImpl(const ModelConfig& c, const torch::TensorOptions& options);
  RMSNorm norm{nullptr};
};
TORCH_MODULE(MtpHead);

// Layer `index` of the stack. Exactly one of self_attn / latent_attn and one of mlp / moe is set
// (each registered under HF's name, "self_attn" and "mlp"). Layers num_hidden_layers and up are
// DeepSeek-V3's multi-token prediction modules, named as in the released checkpoint: a decoder
// layer plus enorm, hnorm, eh_proj and shared_head.norm.
class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelConfig& c, int64_t index, const torch::TensorOptions& options);
  // The attention of either kind (see AttentionImpl::forward).
  torch::Tensor attend(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, KvCache* cache,
                       int64_t layer, const std::vector<at::indexing::TensorIndex>& cache_slots,
                       const torch::Tensor& mask, int64_t used);
  torch::Tensor feed_forward(const torch::Tensor& x) { return moe ? moe(x) : mlp(x); }
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Attention self_attn{nullptr};
  LatentAttention latent_attn{nullptr};
  Mlp mlp{nullptr};
  Moe moe{nullptr};
  // Multi-token prediction modules only.
  RMSNorm enorm{nullptr}, hnorm{nullptr};
  Linear eh_proj{nullptr};  // [H, 2H]: the embedding's half first
  MtpHead shared_head{nullptr};
};
TORCH_MODULE(DecoderLayer);

// HF's "model." prefix: embeddings, the decoder stack, the final norm.
class DecoderStackImpl : public torch::nn::Module {
 public:
  DecoderStackImpl(const ModelConfig& c, const torch::TensorOptions& options);
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers;
  RMSNorm norm{nullptr};
};
TORCH_MODULE(DecoderStack);

// ZeRO-3 (train/sharded_weights.h): the decoder layers' weight matrices lie whole on one rank
// each; the layer loop has a layer's gathered before it runs and released after, and again for its
// backward pass (the hook runs when the gradient reaches the layer's outputs).
class LayerWeights {
 public:
  virtual ~LayerWeights() = default;
  virtual void before_forward(size_t layer) = 0;
  virtual void after_forward(size_t layer) = 0;
  virtual void before_backward(size_t layer) = 0;
};

// One linear layer's weight to int8 or bfloat16 for good (see TransformerImpl::freeze_linears).
void freeze_linear(LinearImpl& linear, WeightType type);

class TransformerImpl : public torch::nn::Module {
 public:
  // Parameters are allocated with `options` (device, dtype) and left uninitialised: call
  // init_weights() or load a checkpoint (io/model_dir.h) before use.
  explicit TransformerImpl(const ModelConfig& config, const torch::TensorOptions& options = torch::kFloat32);

  const ModelConfig& config() const { return config_; }
  // --checkpoint-activations: while gradients are recorded, each decoder layer keeps only its
  // inputs and is recomputed in the backward pass (model/checkpoint.h).
  void set_checkpoint_activations(bool on) { checkpoint_activations_ = on; }
  // ZeRO-3's gatherer (null: every weight is whole here); it must outlive the model's use.
  void set_layer_weights(LayerWeights* w) { layer_weights_ = w; }

  // tokens [B, T] int64 -> final hidden states [B, T, H]. positions default to 0..T-1.
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& positions = {});
  // Packed rows (SFT packing): tokens [B, T] holding several documents and segments [B, T], the
  // document of each position. Attention stays within a document and positions restart at 0 at
  // each document's start, so each document's hidden states equal those of forward() on it alone.
  torch::Tensor forward_packed(const torch::Tensor& tokens, const torch::Tensor& segments);
  // GRPO's training pass, where the G completions of a prompt share it: prompts [P, n] (right-padded,
  // prompt_lengths [P]), completions [R, m] (right-padded) and group [R], the prompt row each
  // completion continues. Each prompt's tokens go through the model once instead of once per
  // completion; completion r's token j sits at position prompt_lengths[group[r]] + j. Returns the
  // hidden states of the prompts [P, n, H] and of the completions [R, m, H]: those of forward() on
  // each prompt + completion row (at real positions; padding holds garbage). With completion_lengths
  // [R] (the real tokens of each completion row) every position past a row's length is padding that
  // no layer computes (all but attention run on the real tokens only) and whose hidden state is 0:
  // GRPO's completions differ several-fold in length, so padding was a third of the positions.
  // Lengths on the host (CPU tensors) spare a device synchronisation on a GPU.
  std::pair<torch::Tensor, torch::Tensor> forward_shared_prefix(const torch::Tensor& prompts,
                                                                const torch::Tensor& prompt_lengths,
                                                                const torch::Tensor& completions,
                                                                const torch::Tensor& group,
                                                                const torch::Tensor& completion_lengths = {});
  // tokens [B, S] appended to `cache` rows first_row..first_row+B-1; sequence b's first new
  // token is at position start[b] (its row holds positions 0..start[b]-1). Returns hidden
  // states [B, S, H].
  torch::Tensor forward_cached(const torch::Tensor& tokens, const std::vector<int64_t>& start, KvCache& cache,
                               int64_t first_row = 0);

  // Multi-token prediction module 1 over a cache made with_mtp (self-speculative decoding):
  // hidden [B, S, H] is forward_cached()'s output for the positions start[b].. of rows
  // first_row.., and next [B, S] the token that follows each of them. Module 1's keys go to the
  // cache's last layer; returns its states [B, S, H] after shared_head.norm, whose logits() predict
  // the token after `next`.
  torch::Tensor mtp_cached(const torch::Tensor& hidden, const torch::Tensor& next, const std::vector<int64_t>& start,
                           KvCache& cache, int64_t first_row = 0);

  // Multi-token prediction (DeepSeek-V3 report §2.2): module k (1-based) predicts token i + k + 1
  // at position i from the previous depth's state at i (depth 0: `hidden`, forward()'s output for
  // `tokens` [B, T]) and the embedding of token i + k, through its decoder layer (causal over the
  // positions) and the model's head. Returns each depth's logits, [B, T - k, V] for module k.
  std::vector<torch::Tensor> mtp_logits(const torch::Tensor& hidden, const torch::Tensor& tokens);

  // hidden [..., H] -> logits [..., V] (through lm_head, or the embedding when tied).
  torch::Tensor logits(const torch::Tensor& hidden);
  // The output head's weight [V, H]: lm_head's, or the embedding when tied.
  torch::Tensor head_weight() const { return lm_head ? lm_head->weight : model->embed_tokens->weight; }
  // log p(targets) for hidden [B, T, H] and targets [B, T], in fp32, computing the vocabulary
  // projection `chunk` positions at a time so a [B, T, V] log-softmax is never materialised.
  torch::Tensor token_logprobs(const torch::Tensor& hidden, const torch::Tensor& targets, int64_t chunk = 256);

  // The parameters a loss trains: all but those with requires_grad false (the routing bias of
  // DeepSeek-V3's MoE layers, which load balancing moves instead).
  std::vector<torch::Tensor> trainable_parameters();

  // Normal(0, config.initializer_range) for matrices and embeddings, ones for norms, zero biases.
  void init_weights(uint64_t seed);
  KvCache make_cache(int64_t batch, int64_t capacity, bool with_mtp = false);
  // The multi-token prediction modules' parameters no longer train (requires_grad false): a stage
  // whose loss does not reach them leaves them as they are instead of decaying them.
  void freeze_mtp_modules();
  // The modules this model holds (0 when its files had none).
  int64_t mtp_modules() const;

  // Inference with int8 or bfloat16 linear weights (--dtype int8, --dtype bfloat16-weights): every
  // linear layer's weight, the output head's included, is replaced by a copy of `type` (int8: one
  // scale per output row, model/decode_matmul.h) and the float32 weight released; activations stay
  // float32. Embeddings, norms, MoE experts' stacked weights and MLA's kv_b_proj (whose weight
  // latent attention reads directly) stay float32. Returns the float32 bytes replaced and the bytes
  // of the copies (a tied head's included). freezable_linears: the layers it converts, by weight
  // name (load_model_dir converts each as soon as it is loaded, so float32 never holds them all).
  std::pair<int64_t, int64_t> freeze_linears(WeightType type = WeightType::kInt8);
  std::map<std::string, LinearImpl*> freezable_linears();

  // hidden [B, T, H] and each row's last real position [B] -> reward-model scores [B] (fp32).
  torch::Tensor scores(const torch::Tensor& hidden, const torch::Tensor& last);

  DecoderStack model{nullptr};
  Linear lm_head{nullptr};  // null when tie_word_embeddings, or for a reward model
  Linear score{nullptr};    // the reward model's head [1, H] (config.sequence_classification)

 private:
  PackedWeight tied_head_packed_;  // decoding's packed copy of the embedding when it is the head
  bool checkpoint_activations_ = false;
  LayerWeights* layer_weights_ = nullptr;
  torch::Tensor run_layers(torch::Tensor h, const torch::Tensor& positions, KvCache* cache,
                           const torch::Tensor& mask, int64_t used);
  // The decoder stack over hidden states h, attend(layer, index, normed input) giving each layer's
  // attention output; returns the final norm's output. Each residual add is taken together with
  // the norm that follows it (one fused pass when no gradient is recorded). With activation
  // checkpointing `attend` is called again in the backward pass: it must hold what it uses by value.
  using AttendFn = std::function<torch::Tensor(DecoderLayerImpl&, int64_t, const torch::Tensor&)>;
  torch::Tensor through_layers(torch::Tensor h, const AttendFn& attend);
  void check_checkpointable();
  // Where a forward over a cache writes and what it may read: rows first_row.. of `cache` (view),
  // each sequence's positions [B, S] from start[b], and the mask [B, 1, S, used] (undefined when
  // the fused CPU decode kernel needs none).
  struct CachedStep {
    KvCache view;
    torch::Tensor positions, mask;
    int64_t used;
  };
  CachedStep cached_step(const torch::Tensor& tokens, const std::vector<int64_t>& start, KvCache& cache,
                         int64_t first_row);
  // Multi-token prediction module `layer`: its decoder layer over eh_proj([enorm(embed(next)) ;
  // hnorm(h)]), returning the layer's output (before shared_head.norm).
  torch::Tensor mtp_module(DecoderLayerImpl& layer, const torch::Tensor& h, const torch::Tensor& next,
                           const torch::Tensor& positions, KvCache* cache, int64_t cache_layer,
                           const torch::Tensor& mask, int64_t used);
  ModelConfig config_;
  RotaryEmbedding rope_;
};
TORCH_MODULE(Transformer);

}  // namespace r1
