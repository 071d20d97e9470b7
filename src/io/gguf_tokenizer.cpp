#include "io/gguf_tokenizer.h"

#include <map>

#include "tokenizer/unicode.h"
#include "util/error.h"
#include "util/json_file.h"

namespace r1 {
namespace {

using nlohmann::json;

// transformers' GGUF_PRE_TOKENIZER_SPLITS for the byte-level families r1 meets (Llama 3, Qwen2 and
// the R1 distills of Qwen); any other name keeps GPT-2's own split, as transformers does.
const char* kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const char* split_for(const std::string& pre) {
  static const std::map<std::string, const char*> splits = {
      {"llama3", kLlama3Split},   {"llama-v3", kLlama3Split},  {"llama-bpe", kLlama3Split},
      {"falcon3", kLlama3Split},  {"smaug-bpe", kLlama3Split}, {"dbrx", kLlama3Split},
      {"qwen2", kQwen2Split},     {"deepseek-r1-qwen", kQwen2Split}, {"megrez", kQwen2Split}};
  auto it = splits.find(pre);
  return it == splits.end() ? nullptr : it->second;
}

json string_list(const gguf::File& f, const std::string& key) {
  const gguf::Value* v = f.find(key);
  if (!v || v->type != gguf::ValueType::kArray || v->element_type != gguf::ValueType::kString)
    throw Error(f.path() + ": metadata '" + key + "' (an array of strings) is missing");
  return v->value;
}

// The token with the id stored under `key`, or null.
json token_at(const gguf::File& f, const std::string& key, const json& tokens) {
  const gguf::Value* v = f.find(key);
  if (!v || !v->value.is_number_integer()) return nullptr;
  const auto id = v->value.get<int64_t>();
  return id >= 0 && id < static_cast<int64_t>(tokens.size()) ? tokens[id] : json(nullptr);
}

// True when every character of the token is one of the 256 byte characters: such a token is
// stored as it is, any other is spelled byte by byte (transformers' byte_level_tokenizer).
bool in_byte_alphabet(const std::string& token) {
  size_t i = 0;
  while (i < token.size())
    if (unicode_to_byte(next_code_point(token, i)) < 0) return false;
  return true;
}

}  // namespace

void write_gguf_tokenizer(const gguf::File& f, const std::string& dir) {
  const gguf::Value* model = f.find("tokenizer.ggml.model");
  if (!model || model->value != "gpt2")
    throw Error(f.path() + ": tokenizer.ggml.model " + (model ? model->value.dump() : std::string("(missing)")) +
                ": r1 rebuilds byte-level BPE tokenizers (\"gpt2\") only");
  const json tokens = string_list(f, "tokenizer.ggml.tokens");
  const json merges = string_list(f, "tokenizer.ggml.merges");
  const gguf::Value* types = f.find("tokenizer.ggml.token_type");
  json vocab = json::object(), added = json::array(), pairs = json::array();
  std::vector<bool> in_alphabet(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) {
    const std::string token = tokens[id].get<std::string>();
    in_alphabet[id] = in_byte_alphabet(token);
    std::string spelled;
    if (!in_alphabet[id]) append_byte_level(token, spelled);
    vocab[in_alphabet[id] ? token : spelled] = id;
  }
  // Control tokens (type 3) become special added tokens, user-defined ones (4) plain added tokens;
  // a control token outside the byte alphabet is a llama.cpp mislabel that transformers skips.
  for (int pass : {3, 4})
    for (size_t id = 0; types && id < types->value.size() && id < tokens.size(); ++id)
      if (types->value[id] == pass && (pass == 4 || in_alphabet[id]))
        added.push_back({{"id", id}, {"content", tokens[id]}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", false}, {"special", pass == 3}});
  for (const auto& m : merges) {
    const std::string s = m.get<std::string>();
    const size_t space = s.find(' ', 1);
    if (space == std::string::npos) throw Error(f.path() + ": tokenizer.ggml.merges entry '" + s + "' has no space");
    pairs.push_back({s.substr(0, space), s.substr(space + 1)});
  }
  const std::string pre = f.find("tokenizer.ggml.pre") ? f.find("tokenizer.ggml.pre")->value.get<std::string>() : "";
  json pre_tokenizer = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  if (const char* split = split_for(pre))
    pre_tokenizer = {{"type", "Sequence"},
                     {"pretokenizers", json::array({{{"type", "Split"}, {"pattern", {{"Regex", split}}},
                                                     {"behavior", "Isolated"}, {"invert", false}},
                                                    {{"type", "ByteLevel"}, {"add_prefix_space", false},
                                                     {"trim_offsets", true}, {"use_regex", false}}})}};
  const json tokenizer = {
      {"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
      {"normalizer", nullptr}, {"pre_tokenizer", pre_tokenizer}, {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                 {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                 {"vocab", vocab}, {"merges", pairs}}}};
  write_text_file(dir + "/tokenizer.json", tokenizer.dump() + "\n");

  json config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                 {"bos_token", token_at(f, "tokenizer.ggml.bos_token_id", tokens)},
                 {"eos_token", token_at(f, "tokenizer.ggml.eos_token_id", tokens)},
                 {"unk_token", token_at(f, "tokenizer.ggml.unknown_token_id", tokens)},
                 {"pad_token", token_at(f, "tokenizer.ggml.padding_token_id", tokens)}};
  for (const char* flag : {"add_bos_token", "add_eos_token"})
    if (const gguf::Value* v = f.find(std::string("tokenizer.ggml.") + flag); v && v->value.is_boolean())
      config[flag] = v->value;
  if (const gguf::Value* t = f.find("tokenizer.chat_template"); t && t->value.is_string())
    config["chat_template"] = t->value;
  write_text_file(dir + "/tokenizer_config.json", config.dump(2) + "\n");
}

}  // namespace r1
