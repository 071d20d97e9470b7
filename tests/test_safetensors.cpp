// The safetensors reader against valid, truncated and hostile files. Built twice: in r1_tests
// and under AddressSanitizer (r1_safetensors_asan), where an out-of-bounds read aborts.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include "io/safetensors.h"
#include "util/error.h"

namespace r1 {
namespace {

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/st_" + std::to_string(::getpid()) + "_" + name;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A header + data buffer assembled by hand, so tests can make it wrong on purpose.
std::string make_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header + data;
}

// Opening must either fail with r1::Error or give tensors that lie inside the file.
void expect_safe(const std::string& bytes, const std::string& name) {
  const std::string path = temp_path(name);
  write_bytes(path, bytes);
  try {
    SafetensorsFile f(path);
    uint64_t sum = 0;
    for (const auto& t : f.tensors()) {
      const uint8_t* p = f.data(t);
      for (uint64_t i = 0; i < t.nbytes(); ++i) sum += p[i];  // ASan catches any stray read
      EXPECT_LE(t.end + 8, bytes.size());
    }
    (void)sum;
  } catch (const Error&) {
  }
  std::remove(path.c_str());
}

void expect_rejected(const std::string& bytes, const std::string& needle) {
  const std::string path = temp_path("bad");
  write_bytes(path, bytes);
  try {
    SafetensorsFile f(path);
    ADD_FAILURE() << "accepted a bad file; expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << "error must name the file: " << e.what();
  }
  std::remove(path.c_str());
}

TEST(Safetensors, RoundTripsEveryDtype) {
  std::mt19937 rng(7);
  std::vector<std::string> payloads;
  std::vector<TensorToWrite> tensors;
  for (int d = 0; d <= static_cast<int>(DType::kU64); ++d) {
    DType dtype = static_cast<DType>(d);
    std::vector<int64_t> shape = {2, 3 + d % 3};
    std::string bytes(6 * 5 * dtype_size(dtype), '\0');
    for (auto& b : bytes) b = static_cast<char>(rng());
    bytes.resize(static_cast<size_t>(shape[0] * shape[1]) * dtype_size(dtype));
    payloads.push_back(bytes);
    tensors.push_back({std::string("t_") + dtype_name(dtype), dtype, shape, nullptr});
  }
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].data = payloads[i].data();
  tensors.push_back({"scalar", DType::kF32, {}, "\x00\x00\x80\x3f"});
  tensors.push_back({"empty", DType::kF16, {0, 4}, ""});
  const std::string path = temp_path("roundtrip.safetensors");
  write_safetensors(path, tensors, {{"format", "pt"}});
  SafetensorsFile f(path);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (size_t i = 0; i + 2 < tensors.size(); ++i) {
    const TensorInfo* t = f.find(tensors[i].name);
    ASSERT_NE(t, nullptr) << tensors[i].name;
    EXPECT_EQ(t->dtype, tensors[i].dtype);
    EXPECT_EQ(t->shape, tensors[i].shape);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data(*t)), t->nbytes()), payloads[i]) << t->name;
  }
  float one;
  std::memcpy(&one, f.data(*f.find("scalar")), 4);
  EXPECT_EQ(one, 1.0f);
  EXPECT_TRUE(f.find("scalar")->shape.empty());
  EXPECT_EQ(f.find("empty")->nbytes(), 0u);
  // Header is padded to 8 bytes so the data buffer is aligned.
  const std::string raw = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  std::remove(path.c_str());
}

TEST(Safetensors, GoldenBytesOfTheSpecExample) {
  // The example of the format's README: one F32 tensor "attn.0" [1,2,3].
  float data[6] = {0, 1, 2, 3, 4, 5};
  const std::string path = temp_path("golden.safetensors");
  write_safetensors(path, {{"attn.0", DType::kF32, {1, 2, 3}, data}});
  const std::string raw = read_bytes(path);
  const std::string header = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  const size_t padded = (header.size() + 7) / 8 * 8;
  ASSERT_EQ(raw.size(), 8 + padded + 24);
  EXPECT_EQ(raw.substr(8, header.size()), header);
  EXPECT_EQ(raw.substr(8 + header.size(), padded - header.size()), std::string(padded - header.size(), ' '));
  EXPECT_EQ(static_cast<size_t>(raw[0]), padded);
  std::remove(path.c_str());
}

TEST(Safetensors, RejectsMalformedFilesWithClearErrors) {
  const std::string ok_data(24, 'x');
  expect_rejected("", "truncated");
  expect_rejected("\x05\x00\x00", "truncated");
  expect_rejected(make_file("{}", "").substr(0, 9), "past the end");
  std::string huge(8, '\xff');
  expect_rejected(huge + "{}", "exceeds the limit");
  expect_rejected(make_file("[1,2]", ""), "not a JSON object");
  expect_rejected(make_file("{\"a\":", ""), "not valid JSON");
  expect_rejected(make_file(R"({"a":{"dtype":"F99","shape":[6],"data_offsets":[0,24]}})", ok_data), "unknown dtype");
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[7],"data_offsets":[0,24]}})", ok_data), "shape x dtype");
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[-6],"data_offsets":[0,24]}})", ok_data), "negative");
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[6],"data_offsets":[0,48]}})", ok_data), "past the data buffer");
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[6],"data_offsets":[24,0]}})", ok_data), "begin > end");
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", ok_data), "overlaps");
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", ok_data), "cover");
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})", ok_data), "gap");
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]},"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}})", ok_data), "twice");
  expect_rejected(make_file(R"({"a":{"dtype":"U8","shape":[4294967296,4294967296,16],"data_offsets":[0,24]}})", ok_data), "overflows");
  expect_rejected(make_file(R"({"__metadata__":{"k":1}})", ""), "__metadata__");
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[6]}})", ok_data), "data_offsets");
}

TEST(Safetensors, SurvivesTruncationAtEveryLength) {
  float data[12] = {};
  const std::string path = temp_path("src.safetensors");
  write_safetensors(path, {{"w", DType::kF32, {3, 2}, data}, {"b", DType::kBF16, {12}, data}});
  const std::string good = read_bytes(path);
  std::remove(path.c_str());
  for (size_t len = 0; len < good.size(); ++len) {
    const std::string cut = temp_path("cut");
    write_bytes(cut, good.substr(0, len));
    EXPECT_THROW(SafetensorsFile f(cut), Error) << "accepted a file truncated to " << len << " bytes";
    std::remove(cut.c_str());
  }
}

TEST(Safetensors, FuzzedHeadersAndRandomFilesNeverReadOutOfBounds) {
  float data[12] = {};
  const std::string path = temp_path("fuzz_src.safetensors");
  write_safetensors(path, {{"w", DType::kF32, {3, 2}, data}, {"b", DType::kBF16, {12}, data}});
  const std::string good = read_bytes(path);
  std::remove(path.c_str());
  std::mt19937 rng(1234);
  const char interesting[] = "0123456789[]{},:\"-eE.";
  for (int iter = 0; iter < 2000; ++iter) {
    std::string bad = good;
    const int edits = 1 + rng() % 4;
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % bad.size();
      bad[pos] = (rng() % 2) ? interesting[rng() % (sizeof interesting - 1)] : static_cast<char>(rng());
    }
    expect_safe(bad, "fuzz");
  }
  for (int iter = 0; iter < 200; ++iter) {
    std::string random(rng() % 256, '\0');
    for (auto& c : random) c = static_cast<char>(rng());
    if (random.size() >= 8 && iter % 2 == 0) {  // plausible header length, random JSON-ish body
      uint64_t n = rng() % (random.size() - 7);
      for (int i = 0; i < 8; ++i) random[i] = static_cast<char>(n >> (8 * i));
    }
    expect_safe(random, "random");
  }
}

TEST(Safetensors, MissingFileIsAnErrorNamingIt) {
  try {
    SafetensorsFile f("/nonexistent/dir/model.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/model.safetensors"), std::string::npos);
  }
}

}  // namespace
}  // namespace r1
