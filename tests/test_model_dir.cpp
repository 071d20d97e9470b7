// Model directories: round trips, sharding, atomic replacement, and clear errors for every
// kind of mismatch between config.json and the stored tensors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "io/model_dir.h"
#include "test_helpers.h"
#include "expect_error.h"
#include "util/error.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

using testing::random_model;
using testing::tiny_config;

fs::path fresh_dir(const std::string& name) {
  fs::path p = fs::path(::testing::TempDir()) / ("md_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  return p;
}

void expect_same_weights(Transformer& a, Transformer& b) {
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters()) {
    ASSERT_TRUE(pb.contains(p.key())) << p.key();
    EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
  }
}

using testing::expect_error;

TEST(ModelDir, RoundTripSingleFileAndSharded) {
  for (int64_t shard_bytes : {int64_t(1) << 40, int64_t(20000)}) {
    ModelConfig c = tiny_config();
    c.architecture = Architecture::kQwen2;
    c.extra["custom_key"] = "kept";
    Transformer m = random_model(c);
    fs::path dir = fresh_dir("rt" + std::to_string(shard_bytes));
    SaveOptions opts;
    opts.max_shard_bytes = shard_bytes;
    save_model_dir(m, dir.string(), opts);
    const bool sharded = fs::exists(dir / "model.safetensors.index.json");
    EXPECT_EQ(sharded, shard_bytes < 100000);
    EXPECT_EQ(fs::exists(dir / "model.safetensors"), !sharded);
    Transformer back = load_model_dir(dir.string());
    expect_same_weights(m, back);
    EXPECT_EQ(back->config().to_json(), m->config().to_json());
    EXPECT_EQ(read_json_file((dir / "config.json").string())["custom_key"], "kept");
    fs::remove_all(dir);
  }
}

TEST(ModelDir, SavesBfloat16AndConvertsOnLoad) {
  Transformer m = random_model(tiny_config());
  fs::path dir = fresh_dir("bf16");
  SaveOptions opts;
  opts.dtype = torch::kBFloat16;
  save_model_dir(m, dir.string(), opts);
  EXPECT_EQ(ModelConfig::load((dir / "config.json").string()).torch_dtype, "bfloat16");
  SafetensorsFile f((dir / "model.safetensors").string());
  EXPECT_EQ(f.find("model.norm.weight")->dtype, DType::kBF16);
  Transformer back = load_model_dir(dir.string());  // default: float32
  auto w = back->named_parameters()["model.layers.0.mlp.up_proj.weight"];
  EXPECT_EQ(w.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(w, m->named_parameters()["model.layers.0.mlp.up_proj.weight"].to(torch::kBFloat16).to(torch::kFloat32)));
  LoadOptions keep;
  keep.dtype = std::nullopt;  // config.json's torch_dtype
  EXPECT_EQ(load_model_dir(dir.string(), keep)->named_parameters()["model.norm.weight"].scalar_type(), torch::kBFloat16);
  fs::remove_all(dir);
}

TEST(ModelDir, ReplacingADirectoryKeepsItsOtherFiles) {
  Transformer m = random_model(tiny_config());
  fs::path dir = fresh_dir("replace");
  SaveOptions sharded;
  sharded.max_shard_bytes = 20000;
  save_model_dir(m, dir.string(), sharded);
  std::ofstream(dir / "tokenizer.json") << "{}";
  fs::create_directories(dir / "trainer_state");
  std::ofstream(dir / "trainer_state" / "step.txt") << "7";
  Transformer m2 = random_model(tiny_config(), 99);
  save_model_dir(m2, dir.string());  // single file now: the old shards must go
  EXPECT_TRUE(fs::exists(dir / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(dir / "trainer_state" / "step.txt"));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename().string().rfind("model-", 0), std::string::npos);
  for (const auto& e : fs::directory_iterator(dir.parent_path()))
    EXPECT_EQ(e.path().filename().string().find(".replace.tmp"), std::string::npos) << "temporary directory left behind";
  Transformer back = load_model_dir(dir.string());
  expect_same_weights(m2, back);
  fs::remove_all(dir);
}

TEST(ModelDir, MismatchesAreErrorsNamingTheTensor) {
  ModelConfig c = tiny_config();
  Transformer m = random_model(c);
  fs::path dir = fresh_dir("mismatch");
  save_model_dir(m, dir.string());

  // Missing tensor: a config with one more layer than stored.
  ModelConfig deeper = c;
  deeper.num_hidden_layers = 3;
  deeper.save((dir / "config.json").string());
  expect_error([&] { load_model_dir(dir.string()); }, "missing tensors: model.layers.2.");

  // Unexpected tensor: a config with fewer layers.
  ModelConfig shallower = c;
  shallower.num_hidden_layers = 1;
  shallower.save((dir / "config.json").string());
  expect_error([&] { load_model_dir(dir.string()); }, "unexpected tensor 'model.layers.1.");

  // Mis-shaped tensor: a wider MLP.
  ModelConfig wider = c;
  wider.intermediate_size = 64;
  wider.save((dir / "config.json").string());
  expect_error([&] { load_model_dir(dir.string()); }, "model.layers.0.mlp.gate_proj.weight' has shape [48, 32], the config needs [64, 32]");

  // A config far larger than the weights (a mistyped vocab_size): named before allocating it,
  // which would otherwise fail inside the allocator (~25 TB here).
  ModelConfig huge = c;
  huge.vocab_size = int64_t(100) << 30;
  huge.save((dir / "config.json").string());
  expect_error([&] { load_model_dir(dir.string()); }, "config.json describes");
  expect_error([&] { load_model_dir(dir.string()); }, "the config does not match the weights");

  // Broken config.json.
  std::ofstream(dir / "config.json") << "{\"vocab_size\": 97,";
  expect_error([&] { load_model_dir(dir.string()); }, "config.json: invalid JSON");
  expect_error([&] { load_model_dir((dir / "nope").string()); }, "not a model directory");
  fs::remove_all(dir);
}

TEST(ModelDir, WrongDtypesAndBadShardIndexesAreErrors) {
  ModelConfig c = tiny_config();
  Transformer m = random_model(c);
  fs::path dir = fresh_dir("dtype");
  save_model_dir(m, dir.string());
  // Rewrite the weights with one tensor stored as integers.
  std::vector<TensorToWrite> tensors;
  std::vector<torch::Tensor> keep;
  for (auto& p : m->named_parameters()) {
    torch::Tensor t = p.key() == "model.norm.weight" ? p.value().to(torch::kInt32) : p.value().detach().contiguous();
    keep.push_back(t);
    tensors.push_back({p.key(), to_safetensors_dtype(t.scalar_type()), t.sizes().vec(), t.data_ptr()});
  }
  write_safetensors((dir / "model.safetensors").string(), tensors);
  expect_error([&] { load_model_dir(dir.string()); }, "'model.norm.weight' has non-float dtype I32");

  // A shard index pointing outside the directory, or at a missing shard.
  fs::remove(dir / "model.safetensors");
  std::ofstream(dir / "model.safetensors.index.json") << R"({"weight_map": {"model.norm.weight": "../evil.safetensors"}})";
  expect_error([&] { load_model_dir(dir.string()); }, "must be a plain file name");
  std::ofstream(dir / "model.safetensors.index.json") << R"({"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors"}})";
  expect_error([&] { load_model_dir(dir.string()); }, "model-00001-of-00002.safetensors: cannot open");
  std::ofstream(dir / "model.safetensors.index.json") << R"({"metadata": {}})";
  expect_error([&] { load_model_dir(dir.string()); }, "missing 'weight_map'");
  fs::remove_all(dir);
}

TEST(ModelDir, TruncatedWeightsAreAnErrorNamingTheFile) {
  Transformer m = random_model(tiny_config());
  fs::path dir = fresh_dir("trunc");
  save_model_dir(m, dir.string());
  fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") - 10);
  expect_error([&] { load_model_dir(dir.string()); }, "model.safetensors");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace r1
