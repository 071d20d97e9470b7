// r1 generate: sample completions of prompts with the engine, one JSON line per sample (in input
// order) on stdout or --out: {"index", "sample", "text", "ids", "logprobs", "finish_reason",
// "prompt_tokens"}. Prompts: --prompt TEXT, --prompt-ids 1,2,3, or --prompts FILE.jsonl with
// {"prompt": "..."}, {"prompt_ids": [...]} or {"messages": [...]} per line.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "util/error.h"
#include "util/jsonl.h"

namespace r1::cli {
namespace {

// One prompt as given: text, token ids, or a conversation.
struct PromptInput {
  std::string text;
  std::vector<int64_t> ids;
  std::vector<ChatMessage> messages;
  bool has_ids = false, has_messages = false;
};

std::vector<int64_t> parse_id_list(const std::string& text) {
  std::vector<int64_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      ids.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error("--prompt-ids: '" + item + "' is not an integer (expected e.g. 1,2,3)");
    }
  }
  return ids;
}

// JSONL prompts; errors name file and line.
std::vector<PromptInput> read_prompt_file(const std::string& path) {
  std::vector<PromptInput> prompts;
  for (const auto& [j, lineno] : read_jsonl_rows(path)) {
    const std::string where = path + ":" + std::to_string(lineno);
    PromptInput p;
    if (j.contains("prompt_ids")) {
      if (!j["prompt_ids"].is_array()) throw Error(where + ": 'prompt_ids' must be a list of token ids");
      for (const auto& x : j["prompt_ids"]) {
        if (!x.is_number_integer()) throw Error(where + ": 'prompt_ids' holds a non-integer " + x.dump());
        p.ids.push_back(x.get<int64_t>());
      }
      p.has_ids = true;
    } else if (j.contains("messages")) {
      try {
        p.messages = parse_messages(j);
      } catch (const Error& e) {
        throw Error(where + ": " + e.what());
      }
      p.has_messages = true;
    } else if (j.contains("prompt")) {
      if (!j["prompt"].is_string()) throw Error(where + ": 'prompt' must be a string");
      p.text = j["prompt"].get<std::string>();
    } else {
      throw Error(where + ": expected a 'prompt' (text), 'prompt_ids' (token ids) or 'messages' field");
    }
    prompts.push_back(std::move(p));
  }
  return prompts;
}

// Token ids of a prompt: ids as given; text encoded (with BOS when the tokenizer adds one), or
// as the user turn of the chat template with --chat; conversations through the chat template.
std::vector<int64_t> prompt_tokens(const PromptInput& p, const LoadedModel& m, bool chat) {
  if (p.has_ids) return p.ids;
  if (!m.tokenizer) throw Error("text prompts need tokenizer.json in the model directory (or give prompt_ids)");
  if (p.has_messages || chat) {
    if (!m.chat_format)
      throw Error("no chat template: the tokenizer_config.json names none r1 knows; pass --chat-template NAME");
    const auto messages = p.has_messages ? p.messages : std::vector<ChatMessage>{{"user", p.text}};
    const auto rendered = render_chat(*m.tokenizer, *m.chat_format, messages, true);
    return {rendered.ids.begin(), rendered.ids.end()};
  }
  const auto ids = m.tokenizer->encode(p.text, true);
  return {ids.begin(), ids.end()};
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "sample completions of prompts (JSON lines)");
  struct Args {
    EngineFlags flags;
    std::vector<std::string> prompt_ids, prompt_texts;
    std::string prompts_file, out;
    int n = 1;
    bool chat = false;
  };
  auto a = std::make_shared<Args>();
  a->flags.add_to(cmd);
  cmd->add_option("--prompt", a->prompt_texts, "a text prompt (repeatable)");
  cmd->add_option("--prompt-ids", a->prompt_ids, "a prompt as comma-separated token ids (repeatable)");
  cmd->add_option("--prompts", a->prompts_file, "JSONL: {\"prompt\": text} | {\"prompt_ids\": [...]} | {\"messages\": [...]}");
  cmd->add_option("--n", a->n, "samples per prompt")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--chat", a->chat, "apply the chat template to text prompts (as the user's message)");
  cmd->add_option("--out", a->out, "write the JSON lines here instead of stdout");
  cmd->callback([a] {
    a->flags.finish_sampling();
    std::vector<PromptInput> inputs;
    for (const auto& t : a->prompt_texts) inputs.push_back(PromptInput{t, {}, {}, false, false});
    for (const auto& p : a->prompt_ids) inputs.push_back(PromptInput{"", parse_id_list(p), {}, true, false});
    if (!a->prompts_file.empty()) {
      auto from_file = read_prompt_file(a->prompts_file);
      if (from_file.empty()) throw Error(a->prompts_file + ": no prompts");
      for (auto& p : from_file) inputs.push_back(std::move(p));
    }
    if (inputs.empty()) throw Error("give --prompt, --prompt-ids or --prompts");
    // The KV cache holds max_batch rows of the whole context: no more rows than sequences asked for
    // (one prompt of a model with an 8K context would otherwise take 32 rows' memory).
    const auto sequences = static_cast<int64_t>(inputs.size()) * a->n;
    a->flags.engine.max_batch = std::min(a->flags.engine.max_batch, sequences);
    LoadedModel m = load_for_generation(a->flags);
    std::vector<Request> requests;
    for (size_t i = 0; i < inputs.size(); ++i) {
      Request r;
      r.prompt = prompt_tokens(inputs[i], m, a->chat);
      r.params = a->flags.sampling;
      r.n = a->n;
      requests.push_back(std::move(r));
    }
    const auto results = m.engine->generate(requests);
    std::ofstream file;
    if (!a->out.empty()) {
      file.open(a->out);
      if (!file) throw Error(a->out + ": cannot write");
    }
    std::ostream& out = a->out.empty() ? std::cout : file;
    int64_t tokens = 0;
    for (size_t i = 0; i < results.size(); ++i) {
      for (size_t s = 0; s < results[i].size(); ++s) {
        const Completion& c = results[i][s];
        nlohmann::json j = {{"index", i},       {"sample", s},
                            {"text", c.text},   {"ids", c.ids},
                            {"logprobs", c.logprobs}, {"finish_reason", c.finish_reason},
                            {"prompt_tokens", c.prompt_tokens}};
        if (!c.stop_matched.empty()) j["stop"] = c.stop_matched;
        if (a->flags.sampling.raw_logprobs) j["raw_logprobs"] = c.raw_logprobs;
        out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        tokens += static_cast<int64_t>(c.ids.size());
      }
    }
    std::cerr << "generated " << tokens << " tokens in " << m.engine->steps() << " decode steps";
    if (m.engine->drafted_tokens() > 0)
      std::cerr << "; " << m.engine->accepted_tokens() << " of " << m.engine->drafted_tokens()
                << " speculative drafts accepted";
    std::cerr << "\n";
  });
}

}  // namespace r1::cli
