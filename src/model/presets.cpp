#include "model/presets.h"

#include "util/error.h"

namespace r1 {
namespace {

ModelConfig llama(int64_t vocab, int64_t hidden, int64_t inter, int64_t layers, int64_t heads, int64_t kv_heads,
                  int64_t max_pos) {
  ModelConfig c;
  c.architecture = Architecture::kLlama;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.max_position_embeddings = max_pos;
  return c;
}

ModelConfig with_tokens(ModelConfig c, int64_t bos, int64_t eos) {
  c.bos_token_ids = {bos};
  c.eos_token_ids = {eos};
  return c;
}

ModelConfig deepseek_coder(int64_t hidden, int64_t inter, int64_t layers, int64_t heads, int64_t kv_heads) {
  // Coder: 16K context from linear RoPE scaling x4 on base 1e5 (reference/deepseek-architecture.md 2.1).
  ModelConfig c = with_tokens(llama(32256, hidden, inter, layers, heads, kv_heads, 16384), 32013, 32014);
  c.rope_theta = 100000.0;
  c.rope_scaling.type = "linear";
  c.rope_scaling.factor = 4.0;
  return c;
}

ModelConfig r1_distill_qwen(int64_t vocab, int64_t hidden, int64_t inter, int64_t heads, int64_t kv_heads) {
  ModelConfig c = with_tokens(llama(vocab, hidden, inter, 28, heads, kv_heads, 131072), 151646, 151643);
  c.architecture = Architecture::kQwen2;
  c.torch_dtype = "bfloat16";
  return c;
}

// Qwen3 (R1-0528 was distilled into Qwen3-8B): head_dim 128 whatever the width, per-head q/k
// norms, no attention bias, 40,960 positions, theta 1e6; tied embeddings up to 4B.
ModelConfig qwen3(int64_t hidden, int64_t inter, int64_t layers, int64_t heads, bool tie) {
  ModelConfig c = with_tokens(llama(151936, hidden, inter, layers, heads, 8, 40960), 151643, 151645);
  c.architecture = Architecture::kQwen3;
  c.head_dim = 128;
  c.rope_theta = 1000000.0;
  c.initializer_range = 0.02;
  c.tie_word_embeddings = tie;
  c.torch_dtype = "bfloat16";
  return c;
}

// DeepSeek-V2/V3 (reference/deepseek-v3-architecture.md §6): latent attention sizes q_lora (0:
// none), kv_lora, and V3's per-head 128 nope + 64 rope query/key dims, 128 value dims.
ModelConfig deepseek_moe(Architecture arch, int64_t vocab, int64_t hidden, int64_t inter, int64_t layers, int64_t heads,
                         int64_t q_lora) {
  ModelConfig c = llama(vocab, hidden, inter, layers, heads, heads, 163840);
  c.architecture = arch;
  c.head_dim = 64;
  c.mla = {q_lora, 512, 128, 64, 128, true};
  c.torch_dtype = "bfloat16";
  // YaRN from a 4K pretraining context to 160K (x40).
  c.rope_scaling.type = "yarn";
  c.rope_scaling.factor = 40;
  c.rope_scaling.original_max_position_embeddings = 4096;
  c.rope_scaling.beta_fast = 32;
  c.rope_scaling.beta_slow = 1;
  const double mscale = arch == Architecture::kDeepseekV3 ? 1.0 : 0.707;
  c.rope_scaling.mscale = mscale;
  c.rope_scaling.mscale_all_dim = mscale;
  return c;
}

ModelConfig deepseek_v3() {
  ModelConfig c = with_tokens(deepseek_moe(Architecture::kDeepseekV3, 129280, 7168, 18432, 61, 128, 1536), 0, 1);
  c.moe = {256, 1, 8, 2048, 3, 8, 4, "noaux_tc", true, 2.5};
  c.mtp_layers = 1;
  return c;
}

ModelConfig deepseek_v2() {
  ModelConfig c = with_tokens(deepseek_moe(Architecture::kDeepseekV2, 102400, 5120, 12288, 60, 128, 1536), 100000, 100001);
  c.moe = {160, 2, 6, 1536, 1, 8, 3, "group_limited_greedy", false, 16.0};
  return c;
}

ModelConfig deepseek_v2_lite() {
  ModelConfig c = with_tokens(deepseek_moe(Architecture::kDeepseekV2, 102400, 2048, 10944, 27, 16, 0), 100000, 100001);
  c.moe = {64, 2, 6, 1408, 1, 1, 1, "greedy", false, 1.0};
  return c;
}

// R1's architecture at the size of the CPU demo: latent attention (q LoRA 64, latent 32, heads of
// 32 + 16 rope dims), 8 routed experts in 4 groups (2 groups, 2 experts per token) plus one shared
// expert from the second layer on, one multi-token prediction module.
ModelConfig tiny_v3() {
  ModelConfig c = llama(4096, 128, 384, 4, 4, 4, 1024);
  c.architecture = Architecture::kDeepseekV3;
  c.head_dim = 16;
  c.mla = {64, 32, 32, 16, 32, true};
  c.moe = {8, 1, 2, 96, 1, 4, 2, "noaux_tc", true, 1.0};
  c.mtp_layers = 1;
  return c;
}

ModelConfig tied(ModelConfig c) {
  c.tie_word_embeddings = true;
  return c;
}

std::vector<Preset> build_presets() {
  std::vector<Preset> p;
  p.push_back({"deepseek-llm-7b", "DeepSeek LLM 7B (MHA, 30 layers)",
               with_tokens(llama(102400, 4096, 11008, 30, 32, 32, 4096), 100000, 100001)});
  p.push_back({"deepseek-llm-67b", "DeepSeek LLM 67B (GQA 64/8, 95 layers)",
               with_tokens(llama(102400, 8192, 22016, 95, 64, 8, 4096), 100000, 100001)});
  p.push_back({"deepseek-coder-1.3b", "DeepSeek-Coder 1.3B (16K context, linear RoPE x4)",
               deepseek_coder(2048, 5504, 24, 16, 16)});
  p.push_back({"deepseek-coder-6.7b", "DeepSeek-Coder 6.7B", deepseek_coder(4096, 11008, 32, 32, 32)});
  p.push_back({"deepseek-coder-33b", "DeepSeek-Coder 33B (GQA 56/8)", deepseek_coder(7168, 19200, 62, 56, 8)});
  p.push_back({"deepseek-math-7b", "DeepSeekMath 7B (DeepSeek LLM 7B shape)",
               with_tokens(llama(102400, 4096, 11008, 30, 32, 32, 4096), 100000, 100001)});
  p.push_back({"r1-distill-qwen-1.5b", "DeepSeek-R1-Distill-Qwen-1.5B (Qwen2, GQA 12/2)",
               r1_distill_qwen(151936, 1536, 8960, 12, 2)});
  p.push_back({"r1-distill-qwen-7b", "DeepSeek-R1-Distill-Qwen-7B (Qwen2, GQA 28/4)",
               r1_distill_qwen(152064, 3584, 18944, 28, 4)});
  p.push_back({"qwen3-0.6b", "Qwen3-0.6B (GQA 16/8, head_dim 128, q/k norms, tied)", qwen3(1024, 3072, 28, 16, true)});
  p.push_back({"qwen3-1.7b", "Qwen3-1.7B (GQA 16/8, tied)", qwen3(2048, 6144, 28, 16, true)});
  p.push_back({"qwen3-4b", "Qwen3-4B (GQA 32/8, tied)", qwen3(2560, 9728, 36, 32, true)});
  p.push_back({"qwen3-8b", "Qwen3-8B (GQA 32/8; the R1-0528 student)", qwen3(4096, 12288, 36, 32, false)});
  p.push_back({"deepseek-v3", "DeepSeek-V3 / R1 / R1-Zero (MLA, 256 routed experts, 8 per token, MTP 1)", deepseek_v3()});
  p.push_back({"deepseek-v2", "DeepSeek-V2 (MLA, 160 routed experts, 6 per token)", deepseek_v2()});
  p.push_back({"deepseek-v2-lite", "DeepSeek-V2-Lite (MLA without q LoRA, 64 routed experts)", deepseek_v2_lite()});
  // CPU presets. tiny: the main job's policy; small: a student/teacher pair with tiny.
  p.push_back({"tiny", "~1.8M params, 4 layers x 128, GQA 4/2, vocab 4096 (laptop-CPU RL runs)",
               llama(4096, 128, 384, 4, 4, 2, 1024)});
  p.push_back({"tiny-v3", "R1's architecture at tiny's size: MLA, 8 routed experts (2 per token) + 1 shared, MTP 1",
               tiny_v3()});
  p.push_back({"small", "~40M params, 8 layers x 512, GQA 8/4, vocab 16384",
               llama(16384, 512, 1408, 8, 8, 4, 2048)});
  // The shapes llama2.c's anchors were measured on (benchmarks): stories15M and a 110M-class GQA model.
  p.push_back({"bench-s", "llama2.c stories15M shape: dim 288, 6 layers, 6 heads, vocab 32000 (tied)",
               tied(llama(32000, 288, 768, 6, 6, 6, 256))});
  p.push_back({"bench-m", "dim 768, 12 layers, 12 heads / 4 kv heads, vocab 32000 (tied), ~100M",
               tied(llama(32000, 768, 2048, 12, 12, 4, 1024))});
  for (auto& preset : p) preset.config.validate();
  return p;
}

}  // namespace

const std::vector<Preset>& model_presets() {
  static const std::vector<Preset> presets = build_presets();
  return presets;
}

ModelConfig preset_config(const std::string& name) {
  std::string known;
  for (const auto& p : model_presets()) {
    if (p.name == name) return p.config;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  throw Error("unknown preset '" + name + "' (known: " + known + ")");
}

}  // namespace r1
