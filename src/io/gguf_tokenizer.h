// The tokenizer a GGUF file describes, written as the tokenizer.json and tokenizer_config.json that
// transformers builds from the same metadata (integrations/gguf/gguf_tokenizer_mapping.py in
// transformers 5.24): byte-level BPE (tokenizer.ggml.model "gpt2"), the vocabulary and merges as
// stored, control tokens as special added tokens and user-defined ones as plain added tokens, the
// split pattern named by tokenizer.ggml.pre (GPT-2's when the name is not one transformers maps),
// the special tokens and the chat template. Torch-free.
#pragma once
#include <string>

#include "io/gguf.h"

namespace r1 {

// Writes DIR/tokenizer.json and DIR/tokenizer_config.json; throws r1::Error naming the key for a
// tokenizer r1 cannot rebuild (SentencePiece, no merges).
void write_gguf_tokenizer(const gguf::File& f, const std::string& dir);

}  // namespace r1
