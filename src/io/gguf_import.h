// r1 model import FILE.gguf: a GGUF model (architectures llama, qwen2 and qwen3) as a Hugging Face model
// directory, built as transformers' own GGUF loading builds it (reference/gguf.md §3-5):
// config.json from the metadata, every weight dequantised to float32 under its Hugging Face name
// (llama.cpp's Q/K row permutation undone for arch llama), then stored in the requested dtype, and
// the tokenizer files (io/gguf_tokenizer.h).
#pragma once
#include <string>

#include <torch/torch.h>

#include "io/gguf.h"
#include "model/config.h"

namespace r1 {

// The model's config.json as the GGUF metadata describes it; throws r1::Error naming the key.
ModelConfig config_from_gguf(const gguf::File& f);

// llama.cpp's name of a Llama/Qwen2/Qwen3 model tensor ("model.layers.3.self_attn.q_proj.weight" ->
// "blk.3.attn_q.weight"), or "" for a name it has none for.
std::string gguf_tensor_name(const std::string& hf_name);
// q_proj/k_proj rows (weights or biases) in llama.cpp's order for arch llama (to_file), or back.
torch::Tensor llama_cpp_qk_rows(const torch::Tensor& w, int64_t heads, bool to_file);

struct ImportResult {
  ModelConfig config;
  int64_t tensors = 0;
};

// Writes the model directory `out` (config.json, weights, generation_config.json, tokenizer.json,
// tokenizer_config.json) in `dtype`, atomically.
ImportResult import_gguf_weights(const gguf::File& f, const std::string& out, torch::ScalarType dtype);

}  // namespace r1
