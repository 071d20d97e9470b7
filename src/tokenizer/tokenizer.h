// A byte-level BPE tokenizer that encodes and decodes exactly like Hugging Face `tokenizers`
// for the tokenizer.json files DeepSeek, Qwen and Llama checkpoints ship. Torch-free.
//
// Encoding: added/special tokens are matched first (leftmost-longest; lstrip/rstrip/
// single_word honoured; non-normalized tokens on the raw text, normalized ones after the
// normalizer), the rest is normalized (NFC or nothing), pre-tokenized, and BPE-encoded piece
// by piece. Decoding maps token characters back to bytes and repairs invalid UTF-8.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"

namespace r1 {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false, lstrip = false, rstrip = false, normalized = false, single_word = false;
};

class Tokenizer;

// Streaming decode: feed ids as they are generated, get text that never ends inside a UTF-8
// sequence (incomplete bytes are held back until the token that completes them arrives).
class StreamDecoder {
 public:
  StreamDecoder(const Tokenizer& tokenizer, bool skip_special) : tokenizer_(tokenizer), skip_special_(skip_special) {}
  std::string push(int32_t id);
  // Whatever is still held back, repaired with U+FFFD (end of stream).
  std::string finish();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::string pending_;
};

class Tokenizer {
 public:
  // Loads tokenizer.json; a tokenizer_config.json beside it supplies add_bos_token / bos_token.
  // Unsupported components are an r1::Error naming the component and the file.
  static Tokenizer load(const std::string& path);
  static Tokenizer from_json(const nlohmann::json& j, const std::string& origin);

  // tokenizer.json that HF `tokenizers` loads (merges as ["a", "b"] pairs). save() is atomic.
  nlohmann::json to_json() const;
  void save(const std::string& path) const;

  // add_special: apply the post-processor template (e.g. BOS) and tokenizer_config's add_bos_token.
  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const;
  // Encodes many texts on `threads` threads (0 = all cores); results in input order.
  std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string>& texts, bool add_special = false,
                                                 int threads = 0) const;
  // Ids out of range are an r1::Error naming the id. decode() repairs invalid UTF-8 (U+FFFD)
  // like HF; decode_bytes() returns the exact bytes, so any input round-trips.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  std::string decode_bytes(const std::vector<int32_t>& ids, bool skip_special = false) const;

  int32_t vocab_size() const;  // largest id + 1 (model and added tokens)
  std::optional<int32_t> token_to_id(const std::string& token) const;
  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  bool adds_bos() const { return add_bos_; }  // tokenizer_config.json add_bos_token
  // FNV-1a 64 of the canonical tokenizer.json: equal for files that encode identically however
  // they were formatted; token shards record it so data from another tokenizer is refused.
  uint64_t fingerprint() const;
  // tokenizer_config.json's Jinja chat_template ("" when none).
  const std::string& chat_template() const { return chat_template_; }
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  const BpeModel& model() const { return *model_; }

 private:
  struct Segment {
    std::string text;
    int32_t token = -1;  // an added token's id, or -1 for text still to encode
  };
  void split_added(std::vector<Segment>& segments, bool normalized_pass) const;
  std::string normalize(std::string_view text) const;
  void encode_text(std::string_view text, std::vector<int32_t>& out) const;
  // The bytes a token stands for (byte-level characters mapped back; other text verbatim).
  void append_token_bytes(int32_t id, std::string& out) const;

  std::shared_ptr<BpeModel> model_;
  std::shared_ptr<PreTokenizer> pretokenizer_;
  std::vector<AddedToken> added_;
  std::vector<int32_t> added_index_;  // id -> index in added_, or -1
  // Byte tries of the added tokens for leftmost-longest matching: [0] non-normalized, [1] normalized.
  struct TrieNode {
    std::vector<std::pair<uint8_t, int32_t>> children;  // byte -> node index
    int32_t token = -1;                                  // index into added_ when a token ends here
  };
  struct Trie {
    std::vector<TrieNode> nodes{TrieNode{}};
    std::array<int32_t, 256> root{};  // byte -> child of the root, or 0 for none
    bool empty() const { return nodes.size() == 1; }
    void insert(const std::string& s, int32_t token);
    // Index into added_ of the longest token starting at s[pos], or -1.
    int32_t longest_match(const std::string& s, size_t pos) const;
  };
  Trie added_trie_[2];
  bool nfc_ = false;
  nlohmann::json normalizer_json_, post_processor_json_, decoder_json_;  // written back as loaded
  // TemplateProcessing "single": ids before and after the sequence when add_special.
  std::vector<int32_t> prefix_ids_, suffix_ids_;
  std::optional<int32_t> bos_id_, eos_id_;
  bool add_bos_ = false;  // tokenizer_config.json add_bos_token
  std::string chat_template_;
};

}  // namespace r1
