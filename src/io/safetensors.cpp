#include "io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/json_file.h"

namespace r1 {
namespace {

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},     {DType::kI8, "I8", 1},
    {DType::kF8E5M2, "F8_E5M2", 1}, {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kI16, "I16", 2},
    {DType::kU16, "U16", 2},   {DType::kF16, "F16", 2},   {DType::kBF16, "BF16", 2},
    {DType::kI32, "I32", 4},   {DType::kU32, "U32", 4},   {DType::kF32, "F32", 4},
    {DType::kF64, "F64", 8},   {DType::kI64, "I64", 8},   {DType::kU64, "U64", 8},
};

const DTypeEntry& entry(DType d) { return kDTypes[static_cast<int>(d)]; }

// Multiplies with an overflow check; hostile shapes must not wrap around.
bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

}  // namespace

size_t dtype_size(DType d) { return entry(d).size; }
const char* dtype_name(DType d) { return entry(d).name; }

std::optional<DType> parse_dtype(const std::string& name) {
  for (const auto& e : kDTypes)
    if (name == e.name) return e.dtype;
  return std::nullopt;
}

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  const uint64_t file_size = file_.size();
  if (file_size < 8)
    throw Error(path + ": truncated safetensors file (" + std::to_string(file_size) + " bytes, need at least 8)");
  const uint8_t* bytes = file_.data();
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(bytes[i]) << (8 * i);  // little-endian
  try {
    if (header_len > kMaxSafetensorsHeader)
      throw Error("header length " + std::to_string(header_len) + " exceeds the limit of " +
                  std::to_string(kMaxSafetensorsHeader) + " bytes");
    if (header_len > file_size - 8)
      throw Error("header length " + std::to_string(header_len) + " runs past the end of the file (" +
                  std::to_string(file_size) + " bytes): truncated file?");
    data_ = bytes + 8 + header_len;
    parse_header(reinterpret_cast<const char*>(bytes + 8), header_len, file_size - 8 - header_len);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

void SafetensorsFile::parse_header(const char* header, uint64_t header_len, uint64_t data_len) {
  using nlohmann::json;
  if (header_len == 0 || header[0] != '{') throw Error("header is not a JSON object");
  // The JSON parser keeps the last of duplicate keys; the format forbids duplicates, so catch them.
  std::set<std::string> top_keys;
  std::string duplicate;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      std::string k = parsed.get<std::string>();
      if (!top_keys.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(header, header + header_len, cb);
  } catch (const json::exception& e) {
    throw Error(std::string("header is not valid JSON: ") + e.what());
  }
  if (!duplicate.empty()) throw Error("tensor name '" + duplicate + "' appears twice in the header");
  if (!j.is_object()) throw Error("header is not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw Error("__metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) throw Error("__metadata__ value for '" + m.key() + "' is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw Error(where + ": needs dtype, shape and data_offsets");
    TensorInfo t;
    t.name = name;
    if (!v["dtype"].is_string()) throw Error(where + ": dtype is not a string");
    auto dt = parse_dtype(v["dtype"].get<std::string>());
    if (!dt) throw Error(where + ": unknown dtype '" + v["dtype"].get<std::string>() + "'");
    t.dtype = *dt;
    if (!v["shape"].is_array()) throw Error(where + ": shape is not a list");
    uint64_t numel = 1;
    for (const json& d : v["shape"]) {
      if (!d.is_number_unsigned()) throw Error(where + ": shape has a negative or non-integer dimension " + d.dump());
      uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(INT64_MAX) || mul_overflows(numel, dim, &numel))
        throw Error(where + ": shape " + v["shape"].dump() + " overflows");
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw Error(where + ": data_offsets must be two non-negative integers");
    t.begin = off[0].get<uint64_t>();
    t.end = off[1].get<uint64_t>();
    if (t.begin > t.end) throw Error(where + ": data_offsets begin > end");
    if (t.end > data_len)
      throw Error(where + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                  "] run past the data buffer (" + std::to_string(data_len) + " bytes): truncated file?");
    uint64_t expected = 0;
    if (mul_overflows(numel, dtype_size(t.dtype), &expected) || expected != t.end - t.begin)
      throw Error(where + ": holds " + std::to_string(t.end - t.begin) + " bytes but shape x dtype needs " +
                  std::to_string(numel * dtype_size(t.dtype)));
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  // Tensors must tile the buffer exactly: no overlaps, no gaps, nothing trailing.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  for (const TensorInfo* t : by_offset) {
    if (t->begin < cursor) throw Error("tensor '" + t->name + "' overlaps another tensor");
    if (t->begin > cursor) throw Error("gap in the data buffer before tensor '" + t->name + "'");
    cursor = t->end;
  }
  if (cursor != data_len)
    throw Error("data buffer has " + std::to_string(data_len) + " bytes but tensors cover " + std::to_string(cursor));
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void write_safetensors(const std::string& path, std::vector<TensorToWrite> tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorToWrite& a, const TensorToWrite& b) {
    if (dtype_size(a.dtype) != dtype_size(b.dtype)) return dtype_size(a.dtype) > dtype_size(b.dtype);
    return a.name < b.name;
  });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const auto& t : tensors) {
    if (!names.insert(t.name).second) throw Error(path + ": tensor name '" + t.name + "' given twice");
    uint64_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      if (d < 0) throw Error(path + ": tensor '" + t.name + "' has a negative dimension");
      n *= static_cast<uint64_t>(d);
    }
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    sizes.push_back(n);
    offset += n;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path + ": cannot create (" + std::strerror(errno) + ")");
  try {
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(h.size()) >> (8 * i));
    write_fully(fd, len, 8, path);
    write_fully(fd, h.data(), h.size(), path);
    for (size_t i = 0; i < tensors.size(); ++i) write_fully(fd, tensors[i].data, sizes[i], path);
    if (::fsync(fd) != 0) throw Error(path + ": fsync failed (" + std::strerror(errno) + ")");
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) throw Error(path + ": close failed (" + std::strerror(errno) + ")");
}

}  // namespace r1
