// The project's built-in data for tests (data/, with the tokenizers unpacked): ctest sets
// R1_TEST_DATA to the build tree's data/ folder. Missing data fails the tests, never skips.
#pragma once
#include <string>

#include "tokenizer/tokenizer.h"

namespace r1::testing {

// The build tree's data/ folder (R1_TEST_DATA overrides it).
std::string test_data();

// tests/data in the source tree (hand-written cases shared with the Python tests).
std::string source_test_data();

// The real DeepSeek-V3 tokenizer (loaded once per test binary).
inline const Tokenizer& deepseek_v3_tokenizer() {
  static Tokenizer t = Tokenizer::load(test_data() + "/tokenizers/deepseek_v3/tokenizer.json");
  return t;
}

}  // namespace r1::testing
