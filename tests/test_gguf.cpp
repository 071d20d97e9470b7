// The GGUF reader against files assembled byte by byte: the fields read back, and truncated,
// mutated and random files refused with r1::Error. Built twice: in r1_tests and under
// AddressSanitizer + UBSan (r1_gguf_asan), where any out-of-bounds read aborts. Dequantisation is
// checked against PyPI's gguf in tests/python/test_gguf.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <vector>

#include "io/gguf.h"
#include "util/error.h"

namespace r1 {
namespace {

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/gguf_" + std::to_string(::getpid()) + "_" + name;
}

// Little-endian GGUF v3 bytes, built in the format's order.
struct Bytes {
  std::string b;
  template <typename T>
  Bytes& put(T v) {
    b.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b += s;
    return *this;
  }
};

// Metadata (a u32, a string, an array of strings), a 2 x 32 F32 tensor and a 1 x 32 Q8_0 one.
std::string valid_file() {
  Bytes f;
  f.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(2).put<uint64_t>(3);
  f.str("llama.block_count").put<uint32_t>(4).put<uint32_t>(30);
  f.str("general.name").put<uint32_t>(8).str("tiny");
  f.str("tokenizer.ggml.tokens").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(2).str("a").str("Ġb");
  f.str("w").put<uint32_t>(2).put<uint64_t>(32).put<uint64_t>(2).put<uint32_t>(0).put<uint64_t>(0);
  f.str("q").put<uint32_t>(2).put<uint64_t>(32).put<uint64_t>(1).put<uint32_t>(8).put<uint64_t>(256);
  while (f.b.size() % 32) f.b += '\0';
  for (int i = 0; i < 64; ++i) f.put<float>(static_cast<float>(i) * 0.5f);
  f.put<uint16_t>(0x3800);  // Q8_0 scale 0.5 in binary16
  for (int i = 0; i < 32; ++i) f.put<int8_t>(static_cast<int8_t>(i - 16));
  while (f.b.size() % 32) f.b += '\0';
  return f.b;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Opening either fails with r1::Error or gives tensors that dequantise inside the file.
void expect_safe(const std::string& bytes) {
  const std::string path = temp_path("mutant.gguf");
  write_bytes(path, bytes);
  try {
    gguf::File f(path);
    for (const auto& t : f.tensors()) {
      if (!gguf::dequantisable(t.type)) continue;
      std::vector<float> out(static_cast<size_t>(t.numel()));
      f.dequantize(t, out.data());
    }
  } catch (const Error&) {
  }
  std::remove(path.c_str());
}

TEST(Gguf, ReadsMetadataTensorsAndValues) {
  const std::string path = temp_path("valid.gguf");
  write_bytes(path, valid_file());
  gguf::File f(path);
  EXPECT_EQ(f.version(), 3u);
  ASSERT_NE(f.find("llama.block_count"), nullptr);
  EXPECT_EQ(f.find("llama.block_count")->type, gguf::ValueType::kU32);
  EXPECT_EQ(f.find("llama.block_count")->value, 30);
  EXPECT_EQ(f.find("general.name")->value, "tiny");
  EXPECT_EQ(f.find("tokenizer.ggml.tokens")->value, nlohmann::json::array({"a", "Ġb"}));
  ASSERT_EQ(f.tensors().size(), 2u);
  const auto* w = f.tensor("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->torch_shape(), (std::vector<int64_t>{2, 32}));
  std::vector<float> values(64);
  f.dequantize(*w, values.data());
  EXPECT_EQ(values[63], 31.5f);
  const auto* q = f.tensor("q");
  std::vector<float> qv(32);
  f.dequantize(*q, qv.data());
  EXPECT_EQ(qv[0], -8.0f);
  EXPECT_EQ(qv[31], 7.5f);
  std::remove(path.c_str());
}

TEST(Gguf, HalfToFloatIsExactIncludingSubnormals) {
  EXPECT_EQ(gguf::half_to_float(0x0001), std::ldexp(1.0f, -24));  // the smallest subnormal
  EXPECT_EQ(gguf::half_to_float(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(gguf::half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(gguf::half_to_float(0xc000), -2.0f);
  EXPECT_EQ(gguf::half_to_float(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(gguf::half_to_float(0x7c00)));
  EXPECT_TRUE(std::isnan(gguf::half_to_float(0x7e00)));
  EXPECT_TRUE(std::signbit(gguf::half_to_float(0x8000)));
}

TEST(Gguf, EveryTruncationIsAnError) {
  const std::string good = valid_file();
  // The data ends 30 bytes before the file (256 + 34 bytes, padded to 320); those are padding.
  const size_t data_end = good.size() - 30;
  for (size_t len = 0; len < data_end; ++len) {
    const std::string cut = temp_path("cut.gguf");
    write_bytes(cut, good.substr(0, len));
    EXPECT_THROW(gguf::File f(cut), Error) << "accepted a file truncated to " << len << " bytes";
    std::remove(cut.c_str());
  }
}

TEST(Gguf, MutatedAndRandomFilesNeverReadOutOfBounds) {
  const std::string good = valid_file();
  std::mt19937 rng(99);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string bad = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % 300;  // the header and tensor infos, where the parsing happens
      bad[pos] = (rng() % 3 == 0) ? static_cast<char>(0xff) : static_cast<char>(rng());
    }
    expect_safe(bad);
  }
  for (int iter = 0; iter < 300; ++iter) {
    std::string random = good.substr(0, 8);  // a valid magic and version, then anything
    random.resize(8 + rng() % 400);
    for (size_t i = 8; i < random.size(); ++i) random[i] = static_cast<char>(rng() % 4 == 0 ? 0 : rng());
    expect_safe(random);
  }
}

TEST(Gguf, MissingFileIsAnErrorNamingIt) {
  try {
    gguf::File f("/nonexistent/model.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf"), std::string::npos);
  }
}

}  // namespace
}  // namespace r1
