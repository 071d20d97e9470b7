#include "cli/engine_flags.h"

#include <filesystem>
#include <sstream>

#include "io/model_dir.h"
#include "util/error.h"

namespace r1::cli {
namespace {

int64_t parse_int(const std::string& text, const std::string& flag) {
  try {
    size_t used = 0;
    const int64_t v = std::stoll(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error(flag + ": '" + text + "' is not an integer");
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

void EngineFlags::add_to(CLI::App* cmd, bool with_sampling, bool model_required) {
  auto* m = cmd->add_option("--model", model, "model directory (with tokenizer.json for text)")->check(CLI::ExistingDirectory);
  if (model_required) m->required();
  cmd->add_option("--chat-template", chat_template, "chat template name; default: recognise tokenizer_config.json's");
  cmd->add_option("--max-batch", engine.max_batch, "sequences decoded together (KV cache rows)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--max-context", engine.max_context, "tokens per sequence, prompt included (0 = the model's maximum)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_flag_callback("--no-packed-weights", [this] { engine.packed_weights = false; },
                         "CPU float32: multiply by the weights as they are, not by a copy packed for MKL "
                         "(saves the weights' size in memory; decoding several sequences is slower)");
  cmd->add_flag("--speculative", engine.speculative,
                 "DeepSeek-V3 models with a multi-token prediction module: it drafts the token after next "
                 "and each step checks its draft (two tokens per step where it was right; the output is "
                 "what plain decoding gives)");
  rt.add_to(cmd);
  if (!with_sampling) return;
  auto& s = sampling;
  cmd->add_option("--max-new-tokens", s.max_new_tokens, "tokens to generate per sample")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", s.temperature, "0 = greedy")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", s.top_k, "keep the k most likely tokens (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", s.top_p, "nucleus sampling mass")->capture_default_str();
  cmd->add_option("--min-p", s.min_p, "drop tokens below min-p x the top probability")->capture_default_str();
  cmd->add_option("--repetition-penalty", s.repetition_penalty, "transformers-style, over prompt and output")->capture_default_str();
  cmd->add_option("--presence-penalty", s.presence_penalty, "OpenAI-style, over the output")->capture_default_str();
  cmd->add_option("--frequency-penalty", s.frequency_penalty, "OpenAI-style, over the output")->capture_default_str();
  cmd->add_option("--logit-bias", logit_bias, "token biases: id:bias,id:bias");
  cmd->add_option("--stop", s.stop, "stop string (repeatable)");
  cmd->add_option("--stop-ids", stop_ids, "stop token ids besides EOS: id,id");
  cmd->add_flag("--ignore-eos", s.ignore_eos, "do not stop at the end-of-sequence token");
  cmd->add_flag("--raw-logprobs", s.raw_logprobs, "also report log-probs under the unprocessed model distribution");
  cmd->add_option("--seed", seed, "sampling seed (sample i of a prompt uses seed + i)")->each([this](const std::string&) {
    seeded = true;
  });
}

void EngineFlags::finish_sampling() {
  for (const auto& item : split(logit_bias, ',')) {
    const size_t colon = item.rfind(':');
    if (colon == std::string::npos) throw Error("--logit-bias: '" + item + "' is not id:bias");
    double bias = 0;
    try {
      bias = std::stod(item.substr(colon + 1));
    } catch (const std::exception&) {
      throw Error("--logit-bias: '" + item + "' is not id:bias");
    }
    sampling.logit_bias[parse_int(item.substr(0, colon), "--logit-bias")] = bias;
  }
  for (const auto& item : split(stop_ids, ',')) sampling.stop_ids.push_back(parse_int(item, "--stop-ids"));
  if (seeded) sampling.seed = seed;
}

LoadedModel load_for_generation(const EngineFlags& flags) {
  LoadedModel m;
  const torch::Device device = flags.rt.setup();
  m.model = load_model_dir(flags.model, flags.rt.inference_load(device));
  flags.rt.report_frozen_weights(m.model);
  const auto tok = std::filesystem::path(flags.model) / "tokenizer.json";
  if (std::filesystem::exists(tok)) {
    m.tokenizer = std::make_unique<Tokenizer>(Tokenizer::load(tok.string()));
    if (!flags.chat_template.empty()) {
      m.chat_format = chat_format_from_name(flags.chat_template);
    } else if (!m.tokenizer->chat_template().empty()) {
      try {
        m.chat_format = chat_format_from_jinja(m.tokenizer->chat_template());
      } catch (const Error&) {  // unknown template: only an error when a chat is asked for
      }
    }
  } else if (!flags.chat_template.empty()) {
    throw Error(flags.model + ": no tokenizer.json, so no chat template can be applied");
  }
  m.engine = std::make_unique<Engine>(m.model, m.tokenizer.get(), flags.engine);
  return m;
}

}  // namespace r1::cli
