// The project's built-in data for tests (data/, with the tokenizers unpacked): ctest sets
// R1_TEST_DATA to the build tree's data/ folder. Missing data fails the tests, never skips.
#pragma once
#include <cstdlib>
#include <string>

#include "tokenizer/tokenizer.h"

namespace r1::testing {

inline std::string test_data() {
  const char* env = std::getenv("R1_TEST_DATA");
  return env ? env : R1_BUILD_DATA_DIR;
}

// The real DeepSeek-V3 tokenizer (loaded once per test binary).
inline const Tokenizer& deepseek_v3_tokenizer() {
  static Tokenizer t = Tokenizer::load(test_data() + "/tokenizers/deepseek_v3/tokenizer.json");
  return t;
}

}  // namespace r1::testing
