// Distillation trains a student on its teacher's token sequences, so both must share one
// vocabulary: this tells whether they do, and if not, where they first differ.
#pragma once
#include <string>

#include "tokenizer/tokenizer.h"

namespace r1 {

// Empty when every id means the same bytes in both (same vocabulary size); otherwise a sentence
// naming the first difference.
std::string tokenizer_difference(const Tokenizer& teacher, const Tokenizer& student);

}  // namespace r1
