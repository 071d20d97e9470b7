#include "data/token_shards.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/error.h"
#include "util/json_file.h"

namespace r1 {
namespace {

constexpr char kMagic[8] = {'R', '1', 'T', 'O', 'K', 'E', 'N', 'S'};

void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_u32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace

TokenShardWriter::TokenShardWriter(const std::string& path, uint32_t bytes_per_token, uint64_t fingerprint)
    : path_(path), tmp_(path + ".tmp"), bytes_per_token_(bytes_per_token), fingerprint_(fingerprint) {
  if (bytes_per_token != 2 && bytes_per_token != 4) throw Error(path + ": tokens are 2 or 4 bytes");
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(tmp_ + ": cannot create (" + std::strerror(errno) + ")");
  const std::vector<uint8_t> placeholder(kShardHeaderBytes, 0);  // the real header is written at close()
  write_fully(fd_, placeholder.data(), placeholder.size(), tmp_);
}

TokenShardWriter::~TokenShardWriter() {
  if (fd_ >= 0) {  // not closed: an error happened; leave no partial shard behind
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void TokenShardWriter::append(const std::vector<int32_t>& ids) {
  buffer_.clear();
  buffer_.reserve(ids.size() * bytes_per_token_);
  const uint64_t limit = bytes_per_token_ == 2 ? 0xFFFF : 0xFFFFFFFF;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<uint64_t>(id) > limit)
      throw Error(path_ + ": token id " + std::to_string(id) + " does not fit " + std::to_string(bytes_per_token_) + " bytes");
    for (uint32_t b = 0; b < bytes_per_token_; ++b) buffer_.push_back(static_cast<uint8_t>(static_cast<uint32_t>(id) >> (8 * b)));
  }
  write_fully(fd_, buffer_.data(), buffer_.size(), tmp_);
  tokens_ += ids.size();
}

void TokenShardWriter::close() {
  uint8_t header[kShardHeaderBytes] = {};
  std::memcpy(header, kMagic, 8);
  put_u32(header + 8, kShardVersion);
  put_u32(header + 12, bytes_per_token_);
  put_u64(header + 16, tokens_);
  put_u64(header + 24, fingerprint_);
  if (::pwrite(fd_, header, sizeof header, 0) != static_cast<ssize_t>(sizeof header) || ::fsync(fd_) != 0)
    throw Error(tmp_ + ": writing the header failed (" + std::strerror(errno) + ")");
  ::close(fd_);
  fd_ = -1;
  std::filesystem::rename(tmp_, path_);
}

TokenShard::TokenShard(const std::string& path) : file_(path) {
  const uint64_t size = file_.size();
  if (size < kShardHeaderBytes)
    throw Error(path + ": not a token shard (" + std::to_string(size) + " bytes, shorter than the header)");
  const uint8_t* p = file_.data();
  std::string problem;
  if (std::memcmp(p, kMagic, 8) != 0) problem = "bad magic (not an r1 token shard)";
  else if (get_u32(p + 8) != kShardVersion) problem = "unsupported version " + std::to_string(get_u32(p + 8));
  bytes_per_token_ = get_u32(p + 12);
  tokens_ = get_u64(p + 16);
  fingerprint_ = get_u64(p + 24);
  if (problem.empty() && bytes_per_token_ != 2 && bytes_per_token_ != 4)
    problem = "bytes per token " + std::to_string(bytes_per_token_) + " (must be 2 or 4)";
  if (problem.empty() && (tokens_ > (size - kShardHeaderBytes) / bytes_per_token_ ||
                          kShardHeaderBytes + tokens_ * bytes_per_token_ != size))
    problem = "header says " + std::to_string(tokens_) + " tokens but the file holds " +
              std::to_string((size - kShardHeaderBytes) / bytes_per_token_) + " (truncated?)";
  if (!problem.empty()) throw Error(path + ": " + problem);
  data_ = p + kShardHeaderBytes;
}

int32_t TokenShard::at(uint64_t i) const {
  const uint8_t* p = data_ + i * bytes_per_token_;
  return bytes_per_token_ == 2 ? static_cast<int32_t>(p[0] | (p[1] << 8)) : static_cast<int32_t>(get_u32(p));
}

TokenStream::TokenStream(const std::string& dir, uint64_t expected) {
  const auto manifest_path = (std::filesystem::path(dir) / "manifest.json").string();
  const auto manifest = read_json_file(manifest_path);
  if (!manifest.contains("shards") || !manifest["shards"].is_array() || manifest["shards"].empty())
    throw Error(manifest_path + ": no 'shards' list");
  for (const auto& s : manifest["shards"]) {
    const std::string file = s.value("file", "");
    if (file.empty() || file.find('/') != std::string::npos) throw Error(manifest_path + ": bad shard entry " + s.dump());
    auto shard = std::make_unique<TokenShard>((std::filesystem::path(dir) / file).string());
    if (!shards_.empty() && shard->fingerprint() != fingerprint_)
      throw Error(shard->path() + ": written by a different tokenizer than the other shards");
    fingerprint_ = shard->fingerprint();
    starts_.push_back(total_);
    total_ += shard->size();
    shards_.push_back(std::move(shard));
  }
  if (expected != 0 && fingerprint_ != expected)
    throw Error(dir + ": these shards were made with a different tokenizer (fingerprint " + std::to_string(fingerprint_) +
                ", the tokenizer in use has " + std::to_string(expected) + "); run r1 data prepare again");
  if (total_ == 0) throw Error(dir + ": the shards hold no tokens");
}

void TokenStream::read(uint64_t offset, size_t n, int32_t* out) const {
  uint64_t pos = offset % total_;
  size_t shard = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), pos) - starts_.begin()) - 1;
  for (size_t i = 0; i < n; ++i) {
    while (pos >= starts_[shard] + shards_[shard]->size()) {
      if (++shard == shards_.size()) shard = 0, pos = 0;
    }
    out[i] = shards_[shard]->at(pos - starts_[shard]);
    if (++pos == total_) pos = 0, shard = 0;
  }
}

}  // namespace r1
