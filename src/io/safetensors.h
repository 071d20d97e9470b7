// safetensors reader and writer, written to the format's specification
// (https://github.com/huggingface/safetensors: u64 header length, JSON header, byte buffer).
// Torch-free: tensors are (dtype, shape, bytes). The reader memory-maps the file and validates
// everything before any byte of tensor data is touched, so a truncated or hostile file is a
// clear r1::Error, never an out-of-bounds read.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "util/mapped_file.h"

namespace r1 {

// In the format's order of increasing alignment (the writer sorts by it).
enum class DType { kBool, kU8, kI8, kF8E5M2, kF8E4M3, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64 };

size_t dtype_size(DType d);
const char* dtype_name(DType d);  // "F32", "BF16", ...
std::optional<DType> parse_dtype(const std::string& name);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // offsets into the data buffer, end exclusive
  uint64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// Largest header the reader accepts (the reference implementation's limit).
constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

class SafetensorsFile {
 public:
  // Maps and validates `path`; throws r1::Error naming the file and the problem.
  explicit SafetensorsFile(const std::string& path);
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return file_.path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(const std::string& name) const;
  // Pointer to the tensor's bytes inside the mapping (valid while this object lives).
  const uint8_t* data(const TensorInfo& t) const { return data_ + t.begin; }

 private:
  void parse_header(const char* header, uint64_t header_len, uint64_t data_len);

  MappedFile file_;
  const uint8_t* data_ = nullptr;  // start of the data buffer, inside file_
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // shape x dtype bytes, little-endian, C order
};

// Writes a safetensors file (header padded to 8 bytes; tensors sorted by descending alignment,
// then name, like the reference writer) and fsyncs it.
void write_safetensors(const std::string& path, std::vector<TensorToWrite> tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace r1
