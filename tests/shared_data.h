// ../shared/data for tests: ctest sets R1_SHARED_DATA; missing data fails the tests, never skips.
#pragma once
#include <cstdlib>
#include <string>

#include "tokenizer/tokenizer.h"

namespace r1::testing {

inline std::string shared_data() {
  const char* env = std::getenv("R1_SHARED_DATA");
  return env ? env : "../../../shared/data";
}

// The real DeepSeek-V3 tokenizer (loaded once per test binary).
inline const Tokenizer& deepseek_v3_tokenizer() {
  static Tokenizer t = Tokenizer::load(shared_data() + "/tokenizers/deepseek_v3/tokenizer.json");
  return t;
}

}  // namespace r1::testing
