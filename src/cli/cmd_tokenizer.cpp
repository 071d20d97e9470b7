// r1 tokenizer encode | decode | info: the tokenizer for scripts and debugging.
// Contract: `encode --jsonl` reads one JSON string per line on stdin and writes one JSON array
// of ids per line, in order, adding no special tokens unless --add-special; `decode --jsonl`
// is the inverse (one JSON array in, one JSON string out per line).
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/patterns.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/trainer.h"
#include "util/error.h"
#include "util/progress.h"

namespace r1::cli {
namespace {

struct Args {
  std::string tokenizer, text, out;
  bool jsonl = false, add_special = false, skip_special = false;
  std::vector<int32_t> ids;
};

// Runs `handle` on each stdin line (JSON), naming the line in errors.
template <typename F>
void for_each_stdin_line(F handle) {
  std::string line;
  for (int lineno = 1; std::getline(std::cin, line); ++lineno) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error("stdin:" + std::to_string(lineno) + ": invalid JSON (" + e.what() + ")");
    }
    try {
      handle(j);
    } catch (const Error& e) {
      throw Error("stdin:" + std::to_string(lineno) + ": " + e.what());
    }
  }
}

}  // namespace

void add_tokenizer_command(CLI::App& app) {
  auto* tok = app.add_subcommand("tokenizer", "encode, decode and inspect byte-level BPE tokenizers");
  tok->require_subcommand(1);
  auto a = std::make_shared<Args>();

  auto* enc = tok->add_subcommand("encode", "text -> token ids");
  enc->add_option("--tokenizer", a->tokenizer, "tokenizer.json")->required();
  enc->add_option("--text", a->text, "text to encode (else --jsonl on stdin)");
  enc->add_flag("--jsonl", a->jsonl, "read one JSON string per line on stdin, write one JSON id list per line");
  enc->add_flag("--add-special", a->add_special, "add the tokenizer's special tokens (BOS, templates)");
  enc->callback([a] {
    Tokenizer t = Tokenizer::load(a->tokenizer);
    if (!a->jsonl) {
      std::cout << nlohmann::json(t.encode(a->text, a->add_special)).dump() << "\n";
      return;
    }
    for_each_stdin_line([&](const nlohmann::json& j) {
      if (!j.is_string()) throw Error("expected a JSON string");
      std::cout << nlohmann::json(t.encode(j.get<std::string>(), a->add_special)).dump() << "\n";
    });
  });

  auto* dec = tok->add_subcommand("decode", "token ids -> text");
  dec->add_option("--tokenizer", a->tokenizer, "tokenizer.json")->required();
  dec->add_option("--ids", a->ids, "ids to decode (else --jsonl on stdin)")->delimiter(',');
  dec->add_flag("--jsonl", a->jsonl, "read one JSON id list per line on stdin, write one JSON string per line");
  dec->add_flag("--skip-special", a->skip_special, "leave special tokens out");
  dec->callback([a] {
    Tokenizer t = Tokenizer::load(a->tokenizer);
    if (!a->jsonl) {
      std::cout << t.decode(a->ids, a->skip_special) << "\n";
      return;
    }
    for_each_stdin_line([&](const nlohmann::json& j) {
      if (!j.is_array()) throw Error("expected a JSON list of ids");
      std::vector<int32_t> ids;
      for (const auto& x : j) {
        if (!x.is_number_integer()) throw Error("id " + x.dump() + " is not an integer");
        ids.push_back(x.get<int32_t>());
      }
      std::cout << nlohmann::json(t.decode(ids, a->skip_special)).dump() << "\n";
    });
  });

  auto* train = tok->add_subcommand("train", "train a byte-level BPE tokenizer on text or JSONL files");
  struct TrainArgs {
    std::vector<std::string> inputs;
    std::string field, out, special;
    TrainOptions options;
  };
  auto ta = std::make_shared<TrainArgs>();
  train->add_option("--input", ta->inputs, "text files, or JSONL files with --field")->required()->check(CLI::ExistingFile);
  train->add_option("--field", ta->field, "JSONL field holding the text (plain text files when empty)");
  train->add_option("--vocab-size", ta->options.vocab_size, "byte tokens + merges + special tokens")
      ->capture_default_str()->check(CLI::PositiveNumber);
  std::string patterns;
  for (const auto& n : pattern_names()) patterns += (patterns.empty() ? "" : ", ") + n;
  train->add_option("--pattern", ta->options.pattern, "pre-tokenization pattern: " + patterns)->capture_default_str();
  train->add_option("--special", ta->special, "comma-separated special tokens, e.g. '<|bos|>,<|eos|>'");
  train->add_option("--pad-to-multiple", ta->options.pad_to_multiple, "pad the vocabulary with reserved tokens")
      ->capture_default_str()->check(CLI::PositiveNumber);
  train->add_option("--min-frequency", ta->options.min_frequency, "never merge pairs seen fewer times")->capture_default_str();
  train->add_option("--threads", ta->options.threads, "pre-tokenization threads (0 = all cores)")->capture_default_str();
  train->add_option("--out", ta->out, "output tokenizer.json")->required();
  train->callback([ta] {
    if (!ta->special.empty()) {
      std::stringstream ss(ta->special);
      for (std::string tok; std::getline(ss, tok, ',');)
        if (!tok.empty()) ta->options.special_tokens.push_back(tok);
    }
    auto bar = std::make_shared<ProgressBar>();
    ta->options.progress = [bar](const std::string& stage, uint64_t done, uint64_t total, const std::string& unit) {
      bar->update(stage, done, total, unit);
    };
    Tokenizer t = Tokenizer::from_json(train_tokenizer(ta->inputs, ta->field, ta->options), ta->out);
    bar->finish();
    t.save(ta->out);
    std::cout << "wrote " << ta->out << ": " << t.vocab_size() << " tokens (" << t.model().merges().size()
              << " merges, pattern " << ta->options.pattern << ")\n";
  });

  auto* convert = tok->add_subcommand("convert", "load a tokenizer.json and write it back in r1's canonical form");
  convert->add_option("--tokenizer", a->tokenizer, "input tokenizer.json")->required();
  convert->add_option("--out", a->out, "output tokenizer.json")->required();
  convert->callback([a] {
    Tokenizer::load(a->tokenizer).save(a->out);
    std::cout << "wrote " << a->out << "\n";
  });

  auto* chat = tok->add_subcommand("chat", "render conversations with a chat template (JSON lines in and out)");
  struct ChatArgs {
    std::string tokenizer, name;
    bool generation_prompt = false;
  };
  auto ca = std::make_shared<ChatArgs>();
  chat->add_option("--tokenizer", ca->tokenizer, "tokenizer.json")->required();
  std::string names;
  for (const auto& n : chat_template_names()) names += (names.empty() ? "" : ", ") + n;
  chat->add_option("--chat-template", ca->name, "template name (" + names + "); default: recognise tokenizer_config.json's");
  chat->add_flag("--generation-prompt", ca->generation_prompt, "end with the assistant's prompt");
  chat->callback([ca] {
    Tokenizer t = Tokenizer::load(ca->tokenizer);
    ChatFormat format = ca->name.empty() ? chat_format_from_jinja(t.chat_template()) : chat_format_from_name(ca->name);
    // stdin: {"messages": [{"role": ..., "content": ...}, ...]} per line; stdout: text, ids, mask.
    for_each_stdin_line([&](const nlohmann::json& j) {
      RenderedChat r = render_chat(t, format, parse_messages(j), ca->generation_prompt);
      std::cout << nlohmann::json{{"text", r.text}, {"ids", r.ids}, {"assistant_mask", r.assistant_mask}}.dump() << "\n";
    });
  });

  auto* info = tok->add_subcommand("info", "vocabulary size, special tokens, pipeline");
  info->add_option("--tokenizer", a->tokenizer, "tokenizer.json")->required();
  info->callback([a] {
    Tokenizer t = Tokenizer::load(a->tokenizer);
    std::cout << "vocab size:    " << t.vocab_size() << " (" << t.model().vocab().size() << " BPE tokens, "
              << t.model().merges().size() << " merges, " << t.added_tokens().size() << " added)\n";
    if (t.bos_id()) std::cout << "bos:           " << *t.bos_id() << "\n";
    int shown = 0;
    for (const auto& a2 : t.added_tokens())
      if (a2.special && shown++ < 12) std::cout << "special:       " << a2.id << " " << a2.content << "\n";
  });
}

}  // namespace r1::cli
