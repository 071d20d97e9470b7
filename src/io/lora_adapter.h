// LoRA adapters on disk in PEFT's format (reference/scaling-and-lora.md §4): adapter_config.json
// (peft_type LORA, r, lora_alpha, target_modules, rank/alpha patterns, base_model_name_or_path) and
// adapter_model.safetensors with keys base_model.model.<module>.lora_A.weight / lora_B.weight, so
// PEFT's PeftModel.from_pretrained loads what r1 trains, and r1 loads PEFT's adapters.
#pragma once
#include <functional>
#include <string>

#include "io/model_dir.h"
#include "model/lora.h"

namespace r1 {

// Whether `dir` holds an adapter rather than a whole model (adapter_config.json, no config.json).
bool is_lora_adapter_dir(const std::string& dir);

struct AdapterConfig {
  LoraConfig lora;
  std::string base_model;  // base_model_name_or_path: the model directory the adapter belongs to
  bool score_head = false; // a reward model's: modules_to_save ["classifier", "score"], the head whole in the file
};

// Reads and checks adapter_config.json; errors name the file and the field.
AdapterConfig read_adapter_config(const std::string& dir);

// Whether `dir` holds a reward model: a sequence-classification model, or its LoRA adapter.
bool is_reward_model_dir(const std::string& dir);

// Writes the adapters of `model` (and `write_extra`'s files: trainer state) as the adapter
// directory `dir`, atomically, keeping the other files the directory had.
void save_lora_adapter(Transformer& model, const LoraConfig& config, const std::string& base_model,
                       const std::string& dir, const std::function<void(const std::string&)>& write_extra = {});

// Adds the adapter in `dir` to `model` (its base): every tensor of the file must belong to an
// adapted layer with the configured shape, and every adapted layer must have its two tensors.
void load_lora_adapter(Transformer& model, const std::string& dir);

// The base model an adapter goes on: a reward model's adapter may sit on a causal LM (the run that
// trained it gave it a score head, which the adapter file holds).
Transformer load_adapter_base(const AdapterConfig& adapter, const std::string& base_dir, const LoadOptions& options);

// An adapter directory's base model with the adapter added (unmerged). load_model_dir() takes
// this path for adapter directories, so every command runs them.
Transformer load_adapter_model(const std::string& dir, const LoadOptions& options = {});

// A training run's LoRA: the --lora-* flags of a new run (adapters added to the base it starts
// from), or the adapter of the run being resumed (already on the model load_model_dir returned).
struct RunLora {
  LoraConfig config;
  std::string base;  // the base model directory, absolute
  bool active() const { return config.rank > 0; }
};
RunLora attach_lora(Transformer& model, const LoraConfig& flags, const std::string& loaded_from, uint64_t seed);

// Saves a trained model: as an adapter directory with LoRA, else as a whole model directory.
void save_trained(Transformer& model, const RunLora& lora, const std::string& dir, const SaveOptions& options);

}  // namespace r1
