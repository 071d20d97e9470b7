// Flags shared by the commands that generate (generate, chat, serve): the model directory, the
// engine's batch and context limits, and the sampling parameters; and loading all of it.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/runtime.h"
#include "infer/engine.h"
#include "tokenizer/chat_template.h"

namespace r1::cli {

struct EngineFlags {
  std::string model;
  std::string chat_template;  // empty: recognise the tokenizer_config.json's
  EngineOptions engine;
  SamplingParams sampling;
  std::string logit_bias;     // "id:bias,id:bias"
  std::string stop_ids;       // "id,id"
  uint64_t seed = 0;
  bool seeded = false;
  RuntimeOptions rt;

  void add_to(CLI::App* cmd, bool with_sampling = true, bool model_required = true);
  // Applies the parsed string flags to `sampling` (call after parsing).
  void finish_sampling();
};

// A loaded model with its tokenizer (when the directory has tokenizer.json) and an engine over it.
struct LoadedModel {
  Transformer model{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Engine> engine;
  std::optional<ChatFormat> chat_format;  // when the tokenizer names or the flag gives one
};

LoadedModel load_for_generation(const EngineFlags& flags);

}  // namespace r1::cli
