// A read-only memory mapping of a whole file, unmapped when destroyed. Readers of binary
// formats (safetensors, token shards) validate its bytes before trusting any offset.
#pragma once
#include <cstdint>
#include <string>

namespace r1 {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws r1::Error naming the file
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }  // nullptr for an empty file
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace r1
