// Where the built-in data (evaluation sets, reference tokenizers; the project's data/ folder)
// lives for this binary, so `r1 eval --task gsm8k` works from any working directory.
#pragma once
#include <string>

namespace r1 {

// The first of: the environment variable R1_DATA_DIR; share/r1/data beside an installed binary
// (`cmake --install`); data/ beside a binary in its build tree. Throws r1::Error naming the
// places it looked when none exists.
std::string builtin_data_dir();

}  // namespace r1
