// r1 model inspect FILE.gguf: what a GGUF file holds (metadata and tensors, as gguf-dump prints
// them), and with --dequantize its tensors as float32 safetensors under their GGUF names (the hook
// the dequantisation cross-checks against PyPI's gguf use). r1 model import FILE.gguf --out DIR: the
// model as a Hugging Face directory (io/gguf_import.h).
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "io/gguf.h"
#include "io/gguf_export.h"
#include "io/gguf_import.h"
#include "io/model_dir.h"
#include "io/safetensors.h"

namespace r1::cli {
namespace {

// A metadata value on one line: long arrays (the vocabulary) shortened to their first entries.
std::string shown(const gguf::Value& v) {
  if (v.type != gguf::ValueType::kArray) return v.value.dump();
  std::string s = std::string("[") + gguf::value_type_name(v.element_type) + " x " + std::to_string(v.value.size()) + "]";
  for (size_t i = 0; i < v.value.size() && i < 4; ++i) s += (i ? ", " : " ") + v.value[i].dump();
  return v.value.size() > 4 ? s + ", ..." : s;
}

std::string dims(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? " x " : "") + std::to_string(shape[i]);
  return s;
}

}  // namespace

void add_model_inspect(CLI::App& model) {
  auto* cmd = model.add_subcommand("inspect", "print a GGUF file's metadata and tensors");
  auto file = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("file", *file, "a .gguf file")->required();
  cmd->add_option("--dequantize", *out, "also write every tensor, dequantised to float32, to this .safetensors file");
  cmd->callback([file, out] {
    const gguf::File f(*file);
    std::printf("%s: GGUF v%u, %zu metadata entries, %zu tensors\n", f.path().c_str(), f.version(),
                f.metadata().size(), f.tensors().size());
    for (const auto& [key, value] : f.metadata())
      std::printf("  %-44s %-8s %s\n", key.c_str(), gguf::value_type_name(value.type), shown(value).c_str());
    for (const auto& t : f.tensors())
      std::printf("  %-44s %-5s %s (torch %s)\n", t.name.c_str(), gguf::tensor_type_name(t.type), dims(t.ne).c_str(),
                  dims(t.torch_shape()).c_str());
    if (out->empty()) return;
    std::vector<std::vector<float>> values;
    std::vector<TensorToWrite> tensors;
    values.reserve(f.tensors().size());
    for (const auto& t : f.tensors()) {
      values.emplace_back(static_cast<size_t>(t.numel()));
      f.dequantize(t, values.back().data());
      tensors.push_back({t.name, DType::kF32, t.torch_shape(), values.back().data()});
    }
    write_safetensors(*out, std::move(tensors));
    std::printf("wrote %s: %zu tensors in float32\n", out->c_str(), values.size());
  });
}

void add_model_import(CLI::App& model) {
  auto* cmd = model.add_subcommand("import", "convert a GGUF model (llama, qwen2, qwen3) into a Hugging Face model directory");
  auto file = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto dtype = std::make_shared<std::string>("float32");
  cmd->add_option("file", *file, "a .gguf file")->required();
  cmd->add_option("--out", *out, "the model directory to write")->required();
  cmd->add_option("--dtype", *dtype, "storage dtype: float32, bfloat16 or float16")->capture_default_str();
  cmd->callback([file, out, dtype] {
    const gguf::File f(*file);
    const ImportResult r = import_gguf_weights(f, *out, torch_dtype_from_name(*dtype));
    std::printf("wrote %s: %s, %lld parameters from %lld tensors, %s\n", out->c_str(),
                r.config.architecture_name().c_str(), (long long)r.config.parameter_count(), (long long)r.tensors,
                dtype->c_str());
  });
}

void add_model_export(CLI::App& model) {
  auto* cmd = model.add_subcommand("export", "write a Llama, Qwen2 or Qwen3 model directory as a GGUF file (llama.cpp, Ollama)");
  auto dir = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto format = std::make_shared<std::string>("gguf");
  auto type = std::make_shared<std::string>("f16");
  cmd->add_option("dir", *dir, "the model directory (with its tokenizer.json)")->required();
  cmd->add_option("--out", *out, "the file to write")->required();
  cmd->add_option("--format", *format, "gguf")->check(CLI::IsMember({"gguf"}))->capture_default_str();
  cmd->add_option("--type", *type, "matrix type: f32, f16, bf16 or q8_0 (norms and biases stay f32)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}))
      ->capture_default_str();
  cmd->callback([dir, out, format, type] {  // the captures keep the options' storage alive
    const GgufExportResult r = export_gguf(*dir, *type, *out);
    std::printf("wrote %s: %lld tensors, %s, %.1f MB\n", out->c_str(), (long long)r.tensors, type->c_str(),
                static_cast<double>(r.bytes) / 1e6);
  });
}

}  // namespace r1::cli
