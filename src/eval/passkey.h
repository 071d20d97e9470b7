// Passkey retrieval (Mohtashami & Jaggi 2023, used by LongLoRA, YaRN and DeepSeek-style context
// extension checks): a random 5-digit number hidden at a chosen depth of filler text of a chosen
// length, asked for at the end. Greedy decoding; a trial passes when the first number the model
// writes is the passkey. Accuracy by context length x depth shows whether a long-context stage
// worked: a model extended to 4x its length should retrieve at 4x, and the base should not.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/transformer.h"
#include "tokenizer/tokenizer.h"

namespace r1 {

struct PasskeyOptions {
  std::vector<int64_t> contexts = {1024};               // prompt lengths in tokens
  std::vector<double> depths = {0, 0.25, 0.5, 0.75, 1};  // where the key sits (0 = start, 1 = end)
  int64_t trials = 5;                                    // random keys per (context, depth)
  uint64_t seed = 0;
};

struct PasskeyCell {
  int64_t context, tokens;  // asked-for and actual prompt length
  double depth;
  int64_t passed, trials;
};

// The prompt for one trial, about `context` tokens long (BOS when the tokenizer adds one).
std::vector<int64_t> passkey_prompt(const Tokenizer& tokenizer, int64_t context, double depth, int64_t key);

// The model's answer: the first number in its output (at most 12 digits), -1 when there is none.
int64_t passkey_answer(const std::string& text);

std::vector<PasskeyCell> eval_passkey(Transformer& model, const Tokenizer& tokenizer, const PasskeyOptions& options,
                                      const std::function<void(const PasskeyCell&)>& on_cell = nullptr);

}  // namespace r1
