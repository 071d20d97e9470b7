// The DeepSeek-V2/V3 part of config.json: multi-head latent attention, DeepSeekMoE and
// multi-token prediction fields (reference/deepseek-v3-architecture.md §6). Used by config.cpp.
#pragma once
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "model/config.h"

namespace r1 {

// The keys read_deepseek_fields interprets (the rest of a DeepSeek config.json is kept in `extra`).
const std::set<std::string>& deepseek_keys();
// Reads the MLA/MoE/MTP fields into c (whose architecture is set), with transformers' class defaults
// for absent keys; settings transformers would silently ignore or contradict are errors naming the key.
void read_deepseek_fields(const nlohmann::json& j, const std::string& origin, ModelConfig& c);
void write_deepseek_fields(const ModelConfig& c, nlohmann::json& j);
void validate_deepseek(const ModelConfig& c);

// Parameters of one layer's attention and of one layer's MLP (dense or MoE, all experts).
int64_t attention_parameter_count(const ModelConfig& c);
int64_t mlp_parameter_count(const ModelConfig& c, int64_t layer);
// Of a MoE layer's parameters, those one token passes through.
int64_t activated_mlp_parameter_count(const ModelConfig& c, int64_t layer);

}  // namespace r1
