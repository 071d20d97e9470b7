#include "io/gguf.h"

#include <cstring>
#include <set>

#include "util/error.h"

namespace r1::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read little-endian
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint64_t kMaxString = 1ULL << 30;       // gguf.cpp's limits
constexpr uint64_t kMaxArray = 1ULL << 30;
constexpr size_t kMaxTensorName = 63;             // GGML_MAX_NAME 64, with its NUL
constexpr uint32_t kMaxDims = 4;

struct Layout {
  TensorType type;
  const char* name;
  int64_t block;       // elements per block
  uint64_t block_bytes;
};

constexpr Layout kLayouts[] = {
    {TensorType::kF32, "F32", 1, 4},       {TensorType::kF16, "F16", 1, 2},      {TensorType::kQ4_0, "Q4_0", 32, 18},
    {TensorType::kQ4_1, "Q4_1", 32, 20},   {TensorType::kQ5_0, "Q5_0", 32, 22},  {TensorType::kQ5_1, "Q5_1", 32, 24},
    {TensorType::kQ8_0, "Q8_0", 32, 34},   {TensorType::kQ8_1, "Q8_1", 32, 36},  {TensorType::kQ2_K, "Q2_K", 256, 84},
    {TensorType::kQ3_K, "Q3_K", 256, 110}, {TensorType::kQ4_K, "Q4_K", 256, 144}, {TensorType::kQ5_K, "Q5_K", 256, 176},
    {TensorType::kQ6_K, "Q6_K", 256, 210}, {TensorType::kQ8_K, "Q8_K", 256, 292}, {TensorType::kI8, "I8", 1, 1},
    {TensorType::kI16, "I16", 1, 2},       {TensorType::kI32, "I32", 1, 4},      {TensorType::kI64, "I64", 1, 8},
    {TensorType::kF64, "F64", 1, 8},       {TensorType::kBF16, "BF16", 1, 2},
};

const Layout* layout(uint32_t type) {
  for (const auto& l : kLayouts)
    if (static_cast<uint32_t>(l.type) == type) return &l;
  return nullptr;
}

// Little-endian reads from the mapping with a bounds check before every read.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size) : data_(data), size_(size) {}
  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));  // x86-64 and arm64 are little-endian, like the file
    pos_ += sizeof(T);
    return v;
  }

  std::string string(const char* what) {
    const auto n = read<uint64_t>(what);
    if (n > kMaxString) throw Error(std::string(what) + ": string of " + std::to_string(n) + " bytes (limit 1 GiB)");
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  void need(uint64_t n, const char* what) const {
    if (n > left())
      throw Error(std::string(what) + ": needs " + std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
                  ", the file ends " + std::to_string(left()) + " bytes later (truncated?)");
  }
  const uint8_t* data_;
  uint64_t size_, pos_ = 0;
};

// The format's strings are UTF-8; anything else is refused here rather than met later (printing,
// JSON files, the tokenizer).
std::string checked_utf8(std::string s, const std::string& what) {
  try {
    (void)nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
  } catch (const nlohmann::json::type_error&) {
    throw Error(what + ": a string that is not valid UTF-8");
  }
  return s;
}

// The smallest encoding of a value of this type (to bound array counts by the bytes left).
uint64_t min_bytes(ValueType t) {
  switch (t) {
    case ValueType::kU8: case ValueType::kI8: case ValueType::kBool: return 1;
    case ValueType::kU16: case ValueType::kI16: return 2;
    case ValueType::kU32: case ValueType::kI32: case ValueType::kF32: return 4;
    default: return 8;  // 64-bit numbers, strings (their length), arrays
  }
}

nlohmann::json read_scalar(Cursor& c, ValueType t, const std::string& key) {
  const char* what = key.c_str();
  switch (t) {
    case ValueType::kU8: return c.read<uint8_t>(what);
    case ValueType::kI8: return c.read<int8_t>(what);
    case ValueType::kU16: return c.read<uint16_t>(what);
    case ValueType::kI16: return c.read<int16_t>(what);
    case ValueType::kU32: return c.read<uint32_t>(what);
    case ValueType::kI32: return c.read<int32_t>(what);
    case ValueType::kF32: return c.read<float>(what);
    case ValueType::kBool: return c.read<uint8_t>(what) != 0;
    case ValueType::kString: return checked_utf8(c.string(what), key);
    case ValueType::kU64: return c.read<uint64_t>(what);
    case ValueType::kI64: return c.read<int64_t>(what);
    case ValueType::kF64: return c.read<double>(what);
    case ValueType::kArray: break;
  }
  throw Error(key + ": unexpected value type");
}

ValueType value_type(uint32_t raw, const std::string& key) {
  if (raw > static_cast<uint32_t>(ValueType::kF64))
    throw Error(key + ": unknown value type " + std::to_string(raw));
  return static_cast<ValueType>(raw);
}

Value read_value(Cursor& c, const std::string& key) {
  Value v;
  v.type = value_type(c.read<uint32_t>(key.c_str()), key);
  if (v.type != ValueType::kArray) {
    v.value = read_scalar(c, v.type, key);
    return v;
  }
  v.element_type = value_type(c.read<uint32_t>(key.c_str()), key);
  if (v.element_type == ValueType::kArray) throw Error(key + ": nested arrays are not supported (nor by llama.cpp)");
  const auto n = c.read<uint64_t>(key.c_str());
  if (n > kMaxArray || n > c.left() / min_bytes(v.element_type))
    throw Error(key + ": array of " + std::to_string(n) + " elements does not fit in the " +
                std::to_string(c.left()) + " bytes left");
  v.value = nlohmann::json::array();
  for (uint64_t i = 0; i < n; ++i) v.value.push_back(read_scalar(c, v.element_type, key));
  return v;
}

uint64_t align_up(uint64_t x, uint64_t a) { return x + (a - x % a) % a; }

// ---- dequantisation (reference/gguf.md §2: every product below is exact in float32) ----------

float f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

void dequantize_block(TensorType type, const uint8_t* b, float* y) {
  switch (type) {
    case TensorType::kQ4_0: {
      const float d = f16(b);
      const uint8_t* qs = b + 2;
      for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((qs[j] & 15) - 8) * d;
        y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
      }
      return;
    }
    case TensorType::kQ4_1: {
      const float d = f16(b), m = f16(b + 2);
      const uint8_t* qs = b + 4;
      for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(qs[j] & 15) * d + m;
        y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
      }
      return;
    }
    case TensorType::kQ5_0:
    case TensorType::kQ5_1: {
      const bool with_min = type == TensorType::kQ5_1;
      const float d = f16(b), m = with_min ? f16(b + 2) : 0.0f;
      const uint8_t* p = b + (with_min ? 4 : 2);
      uint32_t qh;
      std::memcpy(&qh, p, 4);
      const uint8_t* qs = p + 4;
      for (int j = 0; j < 16; ++j) {
        const int x0 = (qs[j] & 15) | static_cast<int>(((qh >> j) & 1) << 4);
        const int x1 = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
        y[j] = with_min ? static_cast<float>(x0) * d + m : static_cast<float>(x0 - 16) * d;
        y[j + 16] = with_min ? static_cast<float>(x1) * d + m : static_cast<float>(x1 - 16) * d;
      }
      return;
    }
    case TensorType::kQ8_0: {
      const float d = f16(b);
      const auto* qs = reinterpret_cast<const int8_t*>(b + 2);
      for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
      return;
    }
    case TensorType::kQ2_K: {
      const uint8_t *sc = b, *qs = b + 16;
      const float d = f16(b + 80), dmin = f16(b + 82);
      for (int e = 0; e < 256; ++e) {
        const int n = e / 128, s = (e % 128) / 32, l = e % 32, c = sc[e / 16];
        const int q = (qs[32 * n + l] >> (2 * s)) & 3;
        y[e] = d * static_cast<float>(c & 15) * static_cast<float>(q) - dmin * static_cast<float>(c >> 4);
      }
      return;
    }
    case TensorType::kQ3_K: {
      const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
      const float d = f16(b + 108);
      int S[16];
      for (int k = 0; k < 16; ++k)
        S[k] = (((sc[k % 8] >> (4 * (k / 8))) & 15) | (((sc[8 + k % 4] >> (2 * (k / 4))) & 3) << 4)) - 32;
      for (int e = 0; e < 256; ++e) {
        const int n = e / 128, s = (e % 128) / 32, l = e % 32;
        const int q = ((qs[32 * n + l] >> (2 * s)) & 3) - (((hm[l] >> (e / 32)) & 1) ? 0 : 4);
        y[e] = d * static_cast<float>(S[e / 16]) * static_cast<float>(q);
      }
      return;
    }
    case TensorType::kQ4_K:
    case TensorType::kQ5_K: {
      const bool five = type == TensorType::kQ5_K;
      const float d = f16(b), dmin = f16(b + 2);
      const uint8_t *sc = b + 4, *qh = b + 16, *qs = b + (five ? 48 : 16);
      for (int j = 0; j < 8; ++j) {
        const int S = j < 4 ? sc[j] & 63 : (sc[j + 4] & 15) | ((sc[j - 4] >> 6) << 4);
        const int M = j < 4 ? sc[j + 4] & 63 : (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
        for (int l = 0; l < 32; ++l) {
          int q = (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15;
          if (five) q |= ((qh[l] >> j) & 1) << 4;
          y[32 * j + l] = d * static_cast<float>(S) * static_cast<float>(q) - dmin * static_cast<float>(M);
        }
      }
      return;
    }
    case TensorType::kQ6_K: {
      const uint8_t *ql = b, *qh = b + 128;
      const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
      const float d = f16(b + 208);
      for (int e = 0; e < 256; ++e) {
        const int n = e / 128, g = (e % 128) / 32, l = e % 32;
        const int lo = (ql[64 * n + 32 * (g & 1) + l] >> (4 * (g >> 1))) & 15;
        const int hi = (qh[32 * n + l] >> (2 * g)) & 3;
        y[e] = d * static_cast<float>(sc[e / 16]) * static_cast<float>((lo | (hi << 4)) - 32);
      }
      return;
    }
    default: break;
  }
  throw Error(std::string("no dequantisation for ") + tensor_type_name(type));
}

}  // namespace

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff, bits;
  if (exponent == 0 && mantissa == 0) {
    bits = sign;
  } else if (exponent == 0) {  // subnormal: normalise into float32's range
    exponent = 127 - 15 + 1;
    while (!(mantissa & 0x400)) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ff) << 13);
  } else if (exponent == 31) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

const char* value_type_name(ValueType t) {
  static const char* names[] = {"UINT8",  "INT8",   "UINT16", "INT16", "UINT32", "INT32",  "FLOAT32",
                                "BOOL",   "STRING", "ARRAY",  "UINT64", "INT64", "FLOAT64"};
  const auto i = static_cast<uint32_t>(t);
  return i < sizeof(names) / sizeof(names[0]) ? names[i] : "?";
}

const char* tensor_type_name(TensorType t) {
  const Layout* l = layout(static_cast<uint32_t>(t));
  return l ? l->name : "?";
}

bool dequantisable(TensorType t) {
  switch (t) {
    case TensorType::kF32: case TensorType::kF16: case TensorType::kBF16: case TensorType::kQ4_0:
    case TensorType::kQ4_1: case TensorType::kQ5_0: case TensorType::kQ5_1: case TensorType::kQ8_0:
    case TensorType::kQ2_K: case TensorType::kQ3_K: case TensorType::kQ4_K: case TensorType::kQ5_K:
    case TensorType::kQ6_K: return true;
    default: return false;
  }
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

File::File(const std::string& path) : file_(path) {
  try {
    Cursor c(file_.data(), file_.size());
    if (c.read<uint32_t>("magic") != kMagic) throw Error("not a GGUF file (the magic is not 'GGUF')");
    version_ = c.read<uint32_t>("version");
    if ((version_ & 0xFFFF) == 0) throw Error("big-endian GGUF files are not supported");
    if (version_ != 2 && version_ != 3) throw Error("GGUF version " + std::to_string(version_) + " (r1 reads 2 and 3)");
    const auto tensor_count = c.read<uint64_t>("tensor count");
    const auto kv_count = c.read<uint64_t>("metadata count");
    // Each key-value pair and each tensor info takes more than 8 bytes: bound the counts by the file.
    if (kv_count > c.left() / 8 || tensor_count > c.left() / 8)
      throw Error(std::to_string(kv_count) + " metadata entries and " + std::to_string(tensor_count) +
                  " tensors cannot fit in a file of " + std::to_string(file_.size()) + " bytes");
    for (uint64_t i = 0; i < kv_count; ++i) {
      const std::string key = checked_utf8(c.string("metadata key"), "metadata key");
      if (key.empty()) throw Error("metadata entry " + std::to_string(i) + " has an empty key");
      if (metadata_.count(key)) throw Error("metadata key '" + key + "' appears twice");
      metadata_[key] = read_value(c, key);
    }
    uint64_t alignment = kDefaultAlignment;
    if (const Value* a = find("general.alignment")) {
      const uint64_t v = a->type == ValueType::kU32 ? a->value.get<uint64_t>() : 0;
      if (v == 0 || (v & (v - 1)) != 0)
        throw Error("general.alignment must be a UINT32 power of two, got " + a->value.dump() + " (" +
                    value_type_name(a->type) + ")");
      alignment = v;
    }
    uint64_t expected_offset = 0;
    for (uint64_t i = 0; i < tensor_count; ++i) {
      TensorInfo t;
      t.name = checked_utf8(c.string("tensor name"), "tensor name");
      const std::string where = "tensor '" + t.name + "'";
      if (t.name.empty() || t.name.size() > kMaxTensorName)
        throw Error(where + ": a name must have 1 to " + std::to_string(kMaxTensorName) + " bytes");
      if (index_.count(t.name)) throw Error(where + " appears twice");
      const auto dims = c.read<uint32_t>(where.c_str());
      if (dims == 0 || dims > kMaxDims) throw Error(where + ": " + std::to_string(dims) + " dimensions (1 to 4)");
      uint64_t numel = 1;
      for (uint32_t d = 0; d < dims; ++d) {
        const auto n = c.read<uint64_t>(where.c_str());
        if (n > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, n, &numel) || numel > INT64_MAX)
          throw Error(where + ": its dimensions overflow");
        t.ne.push_back(static_cast<int64_t>(n));
      }
      const auto raw_type = c.read<uint32_t>(where.c_str());
      const Layout* l = layout(raw_type);
      if (!l) throw Error(where + ": ggml type " + std::to_string(raw_type) + " is not one r1 reads");
      t.type = l->type;
      if (t.ne[0] % l->block != 0)
        throw Error(where + ": rows of " + std::to_string(t.ne[0]) + " elements are not whole " + l->name +
                    " blocks of " + std::to_string(l->block));
      if (__builtin_mul_overflow(numel / static_cast<uint64_t>(l->block), l->block_bytes, &t.nbytes))
        throw Error(where + ": its size overflows");
      t.offset = c.read<uint64_t>(where.c_str());
      // As llama.cpp requires: tensors in info order, each at the aligned end of the one before.
      if (t.offset != expected_offset)
        throw Error(where + " has offset " + std::to_string(t.offset) + ", expected " + std::to_string(expected_offset));
      if (__builtin_add_overflow(t.offset, align_up(t.nbytes, alignment), &expected_offset))
        throw Error(where + ": its extent overflows");
      index_[t.name] = tensors_.size();
      tensors_.push_back(std::move(t));
    }
    const uint64_t data_start = align_up(c.pos(), alignment);
    const uint64_t data_size = file_.size() >= data_start ? file_.size() - data_start : 0;
    for (const auto& t : tensors_)
      if (t.offset + t.nbytes > data_size)
        throw Error("tensor '" + t.name + "' ends at byte " + std::to_string(data_start + t.offset + t.nbytes) +
                    " of the file, which has " + std::to_string(file_.size()) + " (truncated?)");
    data_ = file_.data() + data_start;
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

const Value* File::find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const TensorInfo* File::tensor(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void File::dequantize(const TensorInfo& t, float* out) const {
  const uint8_t* p = data_ + t.offset;
  const int64_t n = t.numel();
  switch (t.type) {
    case TensorType::kF32:
      std::memcpy(out, p, static_cast<size_t>(n) * 4);
      return;
    case TensorType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = f16(p + 2 * i);
      return;
    case TensorType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        const uint32_t bits = static_cast<uint32_t>(h) << 16;
        std::memcpy(out + i, &bits, 4);
      }
      return;
    default: break;
  }
  if (!dequantisable(t.type))
    throw Error(path() + ": tensor '" + t.name + "' is " + tensor_type_name(t.type) + ", which r1 cannot dequantise");
  const Layout* l = layout(static_cast<uint32_t>(t.type));
  for (int64_t b = 0; b < n / l->block; ++b) dequantize_block(t.type, p + b * l->block_bytes, out + b * l->block);
}

}  // namespace r1::gguf
