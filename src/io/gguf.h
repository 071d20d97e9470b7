// GGUF, the model file format of llama.cpp and Ollama (reference/gguf.md): a reader written to the
// format's specification, torch-free like the safetensors reader. It memory-maps the file and
// validates the header, every metadata value and every tensor's extent before any tensor byte is
// read, as strictly as llama.cpp's own loader (gguf.cpp), so a truncated or hostile file is a clear
// r1::Error naming the file and the field, never an out-of-bounds read or a huge allocation.
// Tensors of the common ggml types dequantise to float32 exactly as gguf-py (and so transformers)
// does.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/mapped_file.h"

namespace r1::gguf {

// Metadata value types (the format's numbering).
enum class ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9,
  kU64 = 10, kI64 = 11, kF64 = 12,
};
const char* value_type_name(ValueType t);

struct Value {
  ValueType type = ValueType::kU32;
  ValueType element_type = ValueType::kU32;  // arrays only
  nlohmann::json value;                      // number, bool, string or array of one of those
};

// ggml tensor types r1 knows the layout of (the format's numbering; 4 and 5 were removed).
enum class TensorType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8, kQ8_1 = 9, kQ2_K = 10, kQ3_K = 11,
  kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kQ8_K = 15, kI8 = 24, kI16 = 25, kI32 = 26, kI64 = 27, kF64 = 28, kBF16 = 30,
};
const char* tensor_type_name(TensorType t);
// True for the types dequantise() reads: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K-Q6_K.
bool dequantisable(TensorType t);

struct TensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] varies fastest (the torch shape is reversed)
  TensorType type = TensorType::kF32;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t nbytes = 0;
  std::vector<int64_t> torch_shape() const { return {ne.rbegin(), ne.rend()}; }
  int64_t numel() const;
};

class File {
 public:
  explicit File(const std::string& path);  // maps and validates; throws r1::Error
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  const std::map<std::string, Value>& metadata() const { return metadata_; }
  const Value* find(const std::string& key) const;
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* tensor(const std::string& name) const;

  // The tensor's values in float32, row-major in torch_shape() order; `out` holds numel() floats.
  // Throws for a type that dequantisable() rejects.
  void dequantize(const TensorInfo& t, float* out) const;

 private:
  MappedFile file_;
  uint32_t version_ = 0;
  std::map<std::string, Value> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  const uint8_t* data_ = nullptr;  // the data section, inside file_
};

// IEEE binary16 to float32, exact (subnormals kept).
float half_to_float(uint16_t h);

}  // namespace r1::gguf
