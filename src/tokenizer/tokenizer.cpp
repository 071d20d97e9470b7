#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <filesystem>

#include "tokenizer/unicode.h"
#include "util/error.h"
#include "util/json_file.h"

namespace r1 {
namespace {

using nlohmann::json;

bool is_space_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_word_byte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         (static_cast<unsigned char>(c) & 0x80);
}

// normalizer: null, NFC, or a Sequence of those (an empty Sequence changes nothing).
bool parse_normalizer(const json& j, const std::string& origin) {
  if (j.is_null()) return false;
  const std::string type = j.value("type", "");
  if (type == "NFC") return true;
  if (type == "Sequence") {
    bool nfc = false;
    for (const auto& n : j.value("normalizers", json::array())) nfc = parse_normalizer(n, origin) || nfc;
    return nfc;
  }
  throw Error(origin + ": normalizer type '" + type + "' is not supported (supported: NFC, Sequence, null)");
}

// post_processor: TemplateProcessing's "single" template gives the special ids around a text.
void parse_post_processor(const json& j, const std::string& origin, std::vector<int32_t>& prefix,
                          std::vector<int32_t>& suffix) {
  if (j.is_null()) return;
  const std::string type = j.value("type", "");
  if (type == "ByteLevel") return;  // offsets only
  if (type == "Sequence") {
    for (const auto& p : j.value("processors", json::array())) parse_post_processor(p, origin, prefix, suffix);
    return;
  }
  if (type != "TemplateProcessing")
    throw Error(origin + ": post_processor type '" + type + "' is not supported (ByteLevel, TemplateProcessing)");
  bool after = false;
  for (const auto& piece : j.value("single", json::array())) {
    if (piece.contains("Sequence")) {
      after = true;
      continue;
    }
    const std::string name = piece.at("SpecialToken").at("id").get<std::string>();
    const json& ids = j.at("special_tokens").at(name).at("ids");
    for (const auto& id : ids) (after ? suffix : prefix).push_back(id.get<int32_t>());
  }
}

std::vector<std::pair<std::string, std::string>> parse_merges(const json& merges, const std::string& origin) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    if (m.is_string()) {  // legacy "a b"
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        throw Error(origin + ": merge " + std::to_string(i) + " '" + s + "' is not two tokens separated by a space");
      out.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      throw Error(origin + ": merge " + std::to_string(i) + " must be \"a b\" or [\"a\", \"b\"], got " + m.dump());
    }
  }
  return out;
}

}  // namespace

Tokenizer Tokenizer::from_json(const json& j, const std::string& origin) {
  if (!j.is_object() || !j.contains("model")) throw Error(origin + ": not a tokenizer.json (no 'model')");
  Tokenizer t;
  const json& m = j["model"];
  const std::string model_type = m.value("type", "BPE");
  if (model_type != "BPE") throw Error(origin + ": model type '" + model_type + "' is not supported (only BPE)");
  if (m.value("byte_fallback", false)) throw Error(origin + ": BPE byte_fallback (SentencePiece-style) is not supported");
  if (!m.contains("vocab") || !m["vocab"].is_object()) throw Error(origin + ": model.vocab must be an object");
  std::unordered_map<std::string, int32_t> vocab;
  vocab.reserve(m["vocab"].size());
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer()) throw Error(origin + ": vocab entry '" + it.key() + "' has a non-integer id");
    vocab.emplace(it.key(), it.value().get<int32_t>());
  }
  bool byte_level = false;
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null())
    t.pretokenizer_ = pretokenizer_from_json(j["pre_tokenizer"], origin, &byte_level);
  if (!byte_level) throw Error(origin + ": no ByteLevel pre_tokenizer: only byte-level BPE tokenizers are supported");
  const std::string decoder = j.contains("decoder") && j["decoder"].is_object() ? j["decoder"].value("type", "") : "";
  if (decoder != "ByteLevel") throw Error(origin + ": decoder type '" + decoder + "' is not supported (only ByteLevel)");
  t.model_ = std::make_shared<BpeModel>(std::move(vocab), parse_merges(m.value("merges", json::array()), origin),
                                        m.value("ignore_merges", false), origin);
  t.normalizer_json_ = j.value("normalizer", json());
  t.post_processor_json_ = j.value("post_processor", json());
  t.decoder_json_ = j["decoder"];
  t.nfc_ = parse_normalizer(t.normalizer_json_, origin);
  parse_post_processor(t.post_processor_json_, origin, t.prefix_ids_, t.suffix_ids_);
  int32_t max_id = t.model_->max_id();
  for (const auto& a : j.value("added_tokens", json::array())) {
    AddedToken tok;
    tok.id = a.at("id").get<int32_t>();
    tok.content = a.at("content").get<std::string>();
    tok.special = a.value("special", false);
    tok.lstrip = a.value("lstrip", false);
    tok.rstrip = a.value("rstrip", false);
    tok.normalized = a.value("normalized", !tok.special);
    tok.single_word = a.value("single_word", false);
    if (tok.content.empty()) throw Error(origin + ": added token " + std::to_string(tok.id) + " is empty");
    max_id = std::max(max_id, tok.id);
    t.added_.push_back(std::move(tok));
  }
  t.added_index_.assign(static_cast<size_t>(max_id + 1), -1);
  for (size_t i = 0; i < t.added_.size(); ++i) {
    const AddedToken& a = t.added_[i];
    t.added_index_[a.id] = static_cast<int32_t>(i);
    t.added_trie_[a.normalized ? 1 : 0].insert(a.content, static_cast<int32_t>(i));
  }
  return t;
}

Tokenizer Tokenizer::load(const std::string& path) {
  Tokenizer t = from_json(read_json_file(path), path);
  // tokenizer_config.json: whether BOS is prepended (transformers' add_bos_token) and which.
  const auto config_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    const json c = read_json_file(config_path.string());
    auto token_of = [&](const char* key) -> std::optional<int32_t> {
      json v = c.value(key, json());
      if (v.is_object()) v = v.value("content", json());
      return v.is_string() ? t.token_to_id(v.get<std::string>()) : std::nullopt;
    };
    t.bos_id_ = token_of("bos_token");
    t.eos_id_ = token_of("eos_token");
    t.add_bos_ = c.value("add_bos_token", false) && t.bos_id_.has_value();
    if (c.contains("chat_template") && c["chat_template"].is_string()) t.chat_template_ = c["chat_template"].get<std::string>();
  }
  return t;
}

json Tokenizer::to_json() const {
  json added = json::array();
  for (const auto& a : added_)
    added.push_back({{"id", a.id}, {"content", a.content}, {"single_word", a.single_word}, {"lstrip", a.lstrip},
                     {"rstrip", a.rstrip}, {"normalized", a.normalized}, {"special", a.special}});
  json merges = json::array();
  for (const auto& [a, b] : model_->merges()) merges.push_back({a, b});
  json model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                {"ignore_merges", model_->ignore_merges()}, {"vocab", model_->vocab()}, {"merges", merges}};
  return {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
          {"normalizer", normalizer_json_}, {"pre_tokenizer", pretokenizer_ ? pretokenizer_->to_json() : json()},
          {"post_processor", post_processor_json_}, {"decoder", decoder_json_}, {"model", model}};
}

void Tokenizer::save(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  write_text_file(tmp, to_json().dump() + "\n");
  std::filesystem::rename(tmp, path);
}

uint64_t Tokenizer::fingerprint() const {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : to_json().dump()) h = (h ^ c) * 1099511628211ULL;
  return h;
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(added_index_.size()); }

std::optional<int32_t> Tokenizer::token_to_id(const std::string& token) const {
  for (const auto& a : added_)
    if (a.content == token) return a.id;
  auto it = model_->vocab().find(token);
  if (it != model_->vocab().end()) return it->second;
  return std::nullopt;
}

std::string Tokenizer::normalize(std::string_view text) const { return nfc_ ? nfc(text) : std::string(text); }

void Tokenizer::Trie::insert(const std::string& s, int32_t token) {
  int32_t node = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto b = static_cast<uint8_t>(s[i]);
    int32_t next = 0;
    if (node == 0) {
      next = root[b];
    } else {
      for (const auto& [byte, child] : nodes[node].children)
        if (byte == b) next = child;
    }
    if (next == 0) {
      next = static_cast<int32_t>(nodes.size());
      nodes.emplace_back();
      if (node == 0) root[b] = next;
      else nodes[node].children.emplace_back(b, next);
    }
    node = next;
  }
  if (nodes[node].token < 0) nodes[node].token = token;  // the first of duplicate contents wins
}

int32_t Tokenizer::Trie::longest_match(const std::string& s, size_t pos) const {
  int32_t node = root[static_cast<uint8_t>(s[pos])], best = -1;
  for (size_t i = pos + 1; node != 0; ++i) {
    if (nodes[node].token >= 0) best = nodes[node].token;
    if (i >= s.size()) break;
    int32_t next = 0;
    for (const auto& [byte, child] : nodes[node].children)
      if (byte == static_cast<uint8_t>(s[i])) {
        next = child;
        break;
      }
    node = next;
  }
  return best;
}

void Tokenizer::split_added(std::vector<Segment>& segments, bool normalized_pass) const {
  const Trie& trie = added_trie_[normalized_pass ? 1 : 0];
  if (trie.empty()) return;
  std::vector<Segment> out;
  for (auto& seg : segments) {
    if (seg.token >= 0) {
      out.push_back(std::move(seg));
      continue;
    }
    const std::string& s = seg.text;
    size_t emitted = 0, pos = 0;
    while (pos < s.size()) {
      // Leftmost-longest: the longest added token starting here.
      const int32_t match = trie.longest_match(s, pos);
      const AddedToken* best = match >= 0 ? &added_[match] : nullptr;
      if (best && best->single_word) {
        const size_t end = pos + best->content.size();
        if ((pos > 0 && is_word_byte(s[pos - 1])) || (end < s.size() && is_word_byte(s[end]))) best = nullptr;
      }
      if (!best) {
        ++pos;
        continue;
      }
      size_t start = pos, end = pos + best->content.size();
      if (best->lstrip)
        while (start > emitted && is_space_byte(s[start - 1])) --start;
      if (best->rstrip)
        while (end < s.size() && is_space_byte(s[end])) ++end;
      if (start > emitted) out.push_back({s.substr(emitted, start - emitted), -1});
      out.push_back({best->content, best->id});
      emitted = pos = end;
    }
    if (emitted < s.size()) out.push_back({s.substr(emitted), -1});
  }
  segments.swap(out);
}

void Tokenizer::encode_text(std::string_view text, std::vector<int32_t>& out) const {
  // HF only ever sees valid UTF-8. Here an invalid byte becomes a piece of its own (its byte
  // token), so every input round-trips and the regex engine only sees valid text.
  size_t run = 0;
  auto flush = [&](size_t end) {
    if (end <= run) return;
    std::vector<std::string> pieces{std::string(text.substr(run, end - run))};
    if (pretokenizer_) pretokenizer_->split(pieces);
    for (const auto& p : pieces) model_->encode(p, out);
  };
  for (size_t i = 0; i < text.size();) {
    const size_t start = i;
    const uint32_t cp = next_code_point(text, i);
    if (cp == 0xFFFD && text.substr(start, i - start) != "\xEF\xBF\xBD") {
      flush(start);
      model_->encode(text.substr(start, i - start), out);
      run = i;
    }
  }
  flush(text.size());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<Segment> segments{{std::string(text), -1}};
  split_added(segments, /*normalized_pass=*/false);
  for (auto& seg : segments)
    if (seg.token < 0) seg.text = normalize(seg.text);
  split_added(segments, /*normalized_pass=*/true);
  std::vector<int32_t> ids;
  if (add_special) {
    ids = prefix_ids_;
    if (add_bos_ && (ids.empty() || ids.front() != *bos_id_)) ids.insert(ids.begin(), *bos_id_);
  }
  for (const auto& seg : segments) {
    if (seg.token >= 0) ids.push_back(seg.token);
    else encode_text(seg.text, ids);
  }
  if (add_special) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(const std::vector<std::string>& texts, bool add_special,
                                                          int threads) const {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::vector<int32_t>> out(texts.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < texts.size();) out[i] = encode(texts[i], add_special);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  return out;
}

void Tokenizer::append_token_bytes(int32_t id, std::string& out) const {
  const std::string* tok = nullptr;
  if (id >= 0 && id < vocab_size() && added_index_[id] >= 0) tok = &added_[added_index_[id]].content;
  else tok = model_->token(id);
  if (!tok) throw Error("decode: token id " + std::to_string(id) + " is not in the vocabulary (size " +
                        std::to_string(vocab_size()) + ")");
  // HF ByteLevel decoder: a token whose characters are all byte characters becomes those
  // bytes; any other token (added tokens like "<｜User｜>") stands for its own UTF-8 text.
  std::string bytes;
  for (size_t i = 0; i < tok->size();) {
    const int b = unicode_to_byte(next_code_point(*tok, i));
    if (b < 0) {
      out += *tok;
      return;
    }
    bytes += static_cast<char>(b);
  }
  out += bytes;
}

std::string Tokenizer::decode_bytes(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (skip_special && id >= 0 && id < vocab_size() && added_index_[id] >= 0 && added_[added_index_[id]].special)
      continue;
    append_token_bytes(id, bytes);
  }
  return bytes;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  return utf8_lossy(decode_bytes(ids, skip_special));
}

}  // namespace r1

namespace r1 {

std::string StreamDecoder::push(int32_t id) {
  pending_ += tokenizer_.decode_bytes({id}, skip_special_);
  const size_t ready = complete_utf8_prefix(pending_);
  std::string out = utf8_lossy(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = utf8_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace r1
