// Hugging Face model directories: config.json + model.safetensors (or sharded files with
// model.safetensors.index.json) + generation_config.json. Tensor names are HF's, so the same
// directory loads in transformers, vLLM and here.
#pragma once
#include <cstdint>
#include <functional>
#include <set>
#include <string>

#include <torch/torch.h>

#include "io/safetensors.h"
#include "model/transformer.h"

namespace r1 {

torch::ScalarType torch_dtype_from_name(const std::string& name);  // "float32", "bfloat16", "float16"
std::string torch_dtype_name(torch::ScalarType t);
torch::ScalarType to_torch_dtype(DType d);  // throws for dtypes torch cannot hold
DType to_safetensors_dtype(torch::ScalarType t);

// Copies a tensor out of a safetensors mapping into a CPU torch tensor of the same dtype.
torch::Tensor read_tensor(const SafetensorsFile& file, const TensorInfo& info);

struct LoadOptions {
  torch::Device device = torch::kCPU;
  // Weights are converted to this dtype on load; nullopt keeps config.json's torch_dtype.
  std::optional<torch::ScalarType> dtype = torch::kFloat32;
  // Linear layers converted to int8 or bfloat16 weights as they load (TransformerImpl::
  // freeze_linears), so the float32 weights are never all held at once: --dtype int8 and
  // bfloat16-weights. Needs dtype float32.
  std::optional<WeightType> linear_weights = std::nullopt;
};

// Loads a model directory; any missing, unexpected or mis-shaped tensor is an r1::Error that
// names the tensor and the file.
Transformer load_model_dir(const std::string& dir, const LoadOptions& options = {});
// A reward model from `dir`: the directory's own when it is one (sequence classification, or a
// reward model's LoRA adapter), else its causal LM with a new score head (initialised from
// `head_seed`), without the LM head and the multi-token prediction modules.
Transformer load_with_score_head(const std::string& dir, const LoadOptions& options, uint64_t head_seed);
// Copies the tensors of `dir` into an existing model of the same architecture. Parameters named in
// `may_be_missing` keep their values when the files lack them; stored tensors in `ignore` are
// skipped (a reward model made from a causal LM: no score.weight yet, an lm_head.weight to drop).
void load_weights(Transformer& model, const std::string& dir, const std::set<std::string>& may_be_missing = {},
                  const std::set<std::string>& ignore = {});

// A parameter as checkpoints store it: fused routed experts (model/moe.h) become one tensor per
// expert, as in the released DeepSeek checkpoints; any other parameter is itself. CPU, contiguous.
std::vector<std::pair<std::string, torch::Tensor>> checkpoint_tensors(const std::string& name, const torch::Tensor& t);

// Copies a tokenizer into model directory `dir`: `tokenizer_json` as tokenizer.json, and the files
// beside it that belong to it (tokenizer_config.json with the chat template and special tokens,
// special_tokens_map.json, chat_template.jinja) where they exist.
void copy_tokenizer_files(const std::string& tokenizer_json, const std::string& dir);

struct SaveOptions {
  // Storage dtype; nullopt = the parameters' dtype. config.json's torch_dtype follows it.
  std::optional<torch::ScalarType> dtype;
  // Split into model-0000i-of-0000n.safetensors + index when the weights exceed this size.
  int64_t max_shard_bytes = 5LL << 30;
  // Called with the temporary directory before it is published, to add files (trainer state)
  // that must appear atomically together with the weights.
  std::function<void(const std::string& dir)> write_extra;
};

// Writes directory `dir` atomically: `write` fills a temporary sibling directory, the files of
// the old `dir` that it did not write are carried over (but those `replaced` names), then the new
// directory takes the old one's place. Shared by model directories and LoRA adapters.
void publish_directory(const std::string& dir, const std::function<void(const std::string& tmp)>& write,
                       const std::function<bool(const std::string& name)>& replaced);

// Writes a complete model directory atomically: into a temporary sibling directory, fsynced,
// then renamed over `dir`. Files already in `dir` that the save does not produce (tokenizer
// files, metrics.jsonl, trainer_state/) are carried over into the new directory.
void save_model_dir(Transformer& model, const std::string& dir, const SaveOptions& options = {});

}  // namespace r1
