#include "train/memory_plan.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "util/error.h"

namespace r1 {
namespace {

std::string num(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", x);
  return buf;
}

// The MLP width a token's activations pass through in layer `l` (routed experts: those it is sent
// to, plus the shared ones).
int64_t mlp_width(const ModelConfig& c, int64_t l) {
  if (!c.is_moe_layer(l)) return c.intermediate_size;
  return c.moe.moe_intermediate_size * (c.moe.num_experts_per_tok + c.moe.n_shared_experts);
}

// Bytes the training forward keeps per token in layer `l`, for the backward pass: the two norms'
// inputs and outputs, queries, attention output, its projection (7 x hidden), keys and values
// (2 x kv), and the MLP's gate, up, activation and product (4 x width). Measured on r1's layers in
// fp32 on a CPU: 37 KB per token per layer for preset small against 38.9 KB here
// (bench/run_plan_check.py).
double layer_activation_bytes(const ModelConfig& c, int64_t l, double element) {
  const double kv = c.is_deepseek() ? static_cast<double>(c.mla.kv_lora_rank + c.mla.qk_rope_head_dim) : c.kv_dim();
  return element * (7.0 * c.hidden_size + 2.0 * kv + 4.0 * mlp_width(c, l));
}

// (in, out) of each linear layer LoRA can adapt in a dense decoder layer.
std::map<std::string, std::pair<int64_t, int64_t>> adaptable(const ModelConfig& c) {
  const int64_t h = c.hidden_size, I = c.intermediate_size;
  return {{"q_proj", {h, c.q_dim()}},  {"k_proj", {h, c.kv_dim()}}, {"v_proj", {h, c.kv_dim()}},
          {"o_proj", {c.q_dim(), h}},  {"gate_proj", {h, I}},       {"up_proj", {h, I}},
          {"down_proj", {I, h}}};
}

}  // namespace

double MemoryPlan::phase_bytes(Phase phase) const {
  double sum = 0;
  for (const auto& i : items)
    if (i.phase == phase) sum += i.bytes;
  return sum;
}

double MemoryPlan::total() const {
  return phase_bytes(Phase::kAlways) + std::max(phase_bytes(Phase::kRollouts), phase_bytes(Phase::kTraining));
}

int64_t lora_parameter_count(const ModelConfig& c, const LoraConfig& lora) {
  if (lora.rank <= 0) return 0;
  if (c.is_deepseek()) throw Error("r1 plan: LoRA is planned for dense (Llama, Qwen) models only");
  const auto layers = adaptable(c);
  std::vector<std::string> targets = lora.targets;
  if (targets.size() == 1 && targets[0] == "all-linear") {
    targets.clear();
    for (const auto& [name, shape] : layers) targets.push_back(name);
  }
  int64_t per_layer = 0;
  for (const auto& t : targets) {
    const auto it = layers.find(t);
    if (it == layers.end()) throw Error("r1 plan: --lora-targets " + t + " is not a linear layer of this model");
    per_layer += lora.rank * (it->second.first + it->second.second);
  }
  return per_layer * c.num_hidden_layers;
}

MemoryPlan plan_memory(const ModelConfig& c, const PlanOptions& o) {
  if (o.gpus < 1 || o.zero < 0 || o.zero > 3 || o.max_context < 1 || o.micro_batch < 1 || o.rollouts < 0 ||
      o.rollout_batch < 0)
    throw Error("r1 plan: --gpus, --max-context and --micro-batch must be >= 1, --zero 0-3, --rollouts and "
                "--rollout-batch >= 0");
  MemoryPlan p;
  const double N = static_cast<double>(o.gpus);
  const double psi = static_cast<double>(c.parameter_count());
  const double lora = static_cast<double>(lora_parameter_count(c, o.lora));
  const double trained = o.lora.rank > 0 ? lora : psi;
  p.parameters = c.parameter_count();
  p.trained_parameters = static_cast<int64_t>(trained);
  const int64_t L = c.num_hidden_layers;
  const double layer_params = (psi - 2.0 * c.vocab_size * c.hidden_size) / std::max<int64_t>(L, 1);

  // Model states (ZeRO: reference §2, as train/training_optimizer.h builds them).
  if (o.zero == 3 && o.lora.rank > 0) throw Error("r1 plan: --zero 3 with LoRA is not built (use --zero 2)");
  if (o.zero == 3) {
    // The layers' matrices sharded, two layers gathered at a time (the one running and the next);
    // embeddings and norms whole. GRPO's engine decodes with every weight gathered.
    const double sharded = L * layer_params;
    p.items.push_back({"weights (fp32)", 4 * sharded / N + 4 * (psi - sharded) + 2 * 4 * layer_params,
                       "4 x layer matrices / gpus + 4 x embeddings + two gathered layers"});
    if (o.rollouts > 0)
      p.items.push_back({"weights gathered for rollouts", 4 * sharded * (N - 1) / N, "4 x layer matrices x (gpus - 1) / gpus",
                         Phase::kRollouts});
  } else {
    p.items.push_back({"weights (fp32)", 4 * (psi + lora), "4 x params"});
  }
  // Data parallelism packs gradients into 25 MB buckets for the collectives, three in flight at
  // most; ZeRO-2/3 keep only the gradients a rank owns.
  const double buckets = o.gpus > 1 ? 3 * 25.0 * (1 << 20) : 0;
  p.items.push_back({"gradients (fp32)", (o.zero >= 2 ? 4 * trained / N : 4 * trained) + buckets,
                     std::string(o.zero >= 2 ? "4 x trained / gpus" : "4 x trained") + (o.gpus > 1 ? " + 3 buckets" : ""),
                     Phase::kTraining});
  p.items.push_back({"AdamW moments (fp32)", 8 * trained / (o.zero >= 1 ? N : 1.0),
                     o.zero >= 1 ? "8 x trained / gpus" : "8 x trained"});
  if (o.beta > 0 && o.lora.rank == 0)
    // r1 grpo --reference-dtype auto: bf16 weights when the passes run in bf16.
    p.items.push_back({o.bf16 ? "reference model (bf16)" : "reference model (fp32)", (o.bf16 ? 2 : 4) * psi,
                       o.bf16 ? "2 x params (beta > 0)" : "4 x params (beta > 0)"});

  // The engine's cache, dense, in fp32: a row per sequence decoded at once.
  if (o.rollouts > 0) {
    const int64_t per_rank = (o.rollouts + o.gpus - 1) / o.gpus;
    const bool batched = o.rollout_batch > 0 && o.rollout_batch < per_rank;
    const double rows = static_cast<double>(batched ? o.rollout_batch : per_rank);
    p.items.push_back({"KV cache (engine, fp32)",
                       rows * static_cast<double>(o.max_context) * static_cast<double>(c.kv_cache_values_per_token()) * 4,
                       std::string(batched ? "rollout batch" : "rollouts / gpus") + " x context x " +
                           std::to_string(c.kv_cache_values_per_token()) + " values x 4",
                       Phase::kRollouts});
  }

  // The training forward of one micro-batch.
  const double tokens = static_cast<double>(o.micro_batch * o.max_context);
  const double element = o.bf16 ? 2.0 : 4.0;
  double per_token = 0, largest_layer = 0;
  for (int64_t l = 0; l < L; ++l) {
    per_token += layer_activation_bytes(c, l, element);
    largest_layer = std::max(largest_layer, layer_activation_bytes(c, l, element));
  }
  if (o.checkpoint_activations)
    // Each layer's input (the residual stream and its normed copy), plus the layer being
    // recomputed: its forward's activations and its backward's, about three layers' worth
    // (measured: bench/run_plan_check.py).
    p.items.push_back({"activations (checkpointed)", tokens * (L * 2.0 * c.hidden_size * element + 3 * largest_layer),
                       "micro-batch tokens x (layers x 2 x hidden + 3 layers' activations)", Phase::kTraining});
  else
    p.items.push_back({"activations", tokens * per_token,
                       "micro-batch tokens x layers x (7 hidden + 2 kv + 4 MLP width) x " + num(element),
                       Phase::kTraining});
  // The head a chunk of rows at a time: the final hidden states and their gradient, one chunk's
  // logits, probabilities and gradient.
  p.items.push_back({"head (256-row chunks)", tokens * c.hidden_size * 8.0 + 256.0 * c.vocab_size * 12,
                     "tokens x hidden x 8 + 256 x vocab x 12", Phase::kTraining});
  p.items.push_back({"runtime (libtorch, CUDA context)", 0.5e9, "measured ~0.5 GB on a CPU"});
  return p;
}

}  // namespace r1
