// r1 model export DIR --format gguf: a Llama, Qwen2 or Qwen3 model directory (with its tokenizer) as a GGUF
// file that llama.cpp and Ollama load (reference/gguf.md §1-6): the metadata llama.cpp requires with
// the exact types its loader checks, tensors under llama.cpp's names (Q/K rows permuted for arch
// llama, as its converter does), matrices in F32, F16, BF16 or Q8_0 (bit-exact to gguf-py's
// quantiser), vectors and norms in F32, offsets packed in order at 32-byte alignment.
#pragma once
#include <string>

namespace r1 {

struct GgufExportResult {
  int64_t tensors = 0;
  uint64_t bytes = 0;
};

// type: "f32", "f16", "bf16" or "q8_0". Writes `out` atomically; throws r1::Error naming what
// cannot be exported (another architecture, a tokenizer llama.cpp has no name for).
GgufExportResult export_gguf(const std::string& model_dir, const std::string& type, const std::string& out);

}  // namespace r1
