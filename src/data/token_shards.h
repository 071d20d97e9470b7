// Token shards: the pretraining data on disk. A shard is a 64-byte header (magic "R1TOKENS",
// version, bytes per token, token count, tokenizer fingerprint) followed by the tokens as
// little-endian uint16 (vocabularies up to 65,536) or uint32. A prepared directory holds the
// shards and manifest.json. Readers memory-map and validate before touching tokens. Torch-free.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/mapped_file.h"

namespace r1 {

constexpr uint32_t kShardVersion = 1;
constexpr size_t kShardHeaderBytes = 64;

class TokenShardWriter {
 public:
  TokenShardWriter(const std::string& path, uint32_t bytes_per_token, uint64_t tokenizer_fingerprint);
  ~TokenShardWriter();
  void append(const std::vector<int32_t>& ids);
  // Writes the final header, fsyncs, and renames the temporary file into place.
  void close();
  uint64_t tokens() const { return tokens_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  uint32_t bytes_per_token_;
  uint64_t fingerprint_, tokens_ = 0;
  std::vector<uint8_t> buffer_;
};

class TokenShard {
 public:
  explicit TokenShard(const std::string& path);  // throws r1::Error naming the file
  uint64_t size() const { return tokens_; }
  uint64_t fingerprint() const { return fingerprint_; }
  int32_t at(uint64_t i) const;
  const std::string& path() const { return file_.path(); }

 private:
  MappedFile file_;
  const uint8_t* data_ = nullptr;  // the tokens, inside file_
  uint32_t bytes_per_token_ = 0;
  uint64_t tokens_ = 0, fingerprint_ = 0;
};

// All shards of a prepared directory, read as one token stream that wraps around (epochs).
class TokenStream {
 public:
  // Refuses a directory whose tokenizer fingerprint differs from `expected` (unless 0).
  TokenStream(const std::string& dir, uint64_t expected_fingerprint);
  uint64_t size() const { return total_; }
  uint64_t fingerprint() const { return fingerprint_; }
  // Tokens [offset, offset + n) of the endless stream (offset modulo the size).
  void read(uint64_t offset, size_t n, int32_t* out) const;

 private:
  std::vector<std::unique_ptr<TokenShard>> shards_;
  std::vector<uint64_t> starts_;  // first stream offset of each shard
  uint64_t total_ = 0, fingerprint_ = 0;
};

}  // namespace r1
