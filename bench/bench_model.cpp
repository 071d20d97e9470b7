// r1_bench: one measurement per run, printed as a JSON line (bench/run.py makes the table).
//   r1_bench matmul --n 1024             fp32 matmul GFLOP/s (best of --reps): the machine's ceiling
//   r1_bench bandwidth                   memory read GB/s (best of --reps): batch-1 decoding's ceiling
//   r1_bench train  --preset bench-s     forward + backward + AdamW step, tokens/s and GFLOP/s
//   r1_bench decode --preset bench-s --batch 8   KV-cache decoding tokens/s (greedy, or --temperature T;
//                                        --speculative: MTP drafts, --prompts FILE: real prompts)
//   r1_bench grpo-pass --preset small    GRPO's training forward + backward over completions of mixed
//                                        lengths, padding computed (--pad) or skipped (default)
//   r1_bench attention --preset bench-m --batch 64 --prefix 80   the fused CPU decode attention alone
//                                        (one layer's call), calls/s and KV-cache GB/s
//   r1_bench gemv --rows 1 --n 1536 --k 576 --type int8 --path r1   one weight product of decoding
//                                        (r1's kernel, libtorch's product or MKL's packed one), weight GB/s
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "infer/engine.h"
#include "io/model_dir.h"
#include "model/decode_attention.h"
#include "model/decode_matmul.h"
#include "model/packed_matmul.h"
#include "model/presets.h"
#include "model/transformer.h"
#include "util/device.h"
#include "util/error.h"
#include "util/memory.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

// The best of `reps` products (a shared host's neighbours only ever slow one down).
nlohmann::json bench_matmul(int64_t n, int reps) {
  auto a = torch::randn({n, n}), b = torch::randn({n, n});
  torch::mm(a, b);
  double best = 0;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    torch::mm(a, b);
    best = std::max(best, 2.0 * n * n * n / seconds_since(t0) / 1e9);
  }
  return {{"gflops", best}};
}

// Read bandwidth: summing 1 GB, the access pattern of batch-1 decoding (every weight read once),
// well past any L3 cache (260-480 MB on the Xeons measured), the best of `reps` passes.
nlohmann::json bench_bandwidth(int reps) {
  auto x = torch::ones({250'000'000});
  x.sum();
  double best = 0;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    x.sum();
    best = std::max(best, 1e9 / seconds_since(t0) / 1e9);
  }
  return {{"gb_per_s", best}};
}

void synchronize(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

nlohmann::json bench_train(const r1::ModelConfig& c, int64_t batch, int64_t seq, int steps, torch::Device device) {
  r1::Transformer model(c, torch::TensorOptions().device(device));
  model->init_weights(0);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(3e-4).betas({0.9, 0.95}).weight_decay(0.1));
  auto data = torch::randint(c.vocab_size, {batch, seq + 1}, torch::kInt64).to(device);
  auto x = data.narrow(1, 0, seq), y = data.narrow(1, 1, seq);
  auto step = [&] {
    opt.zero_grad();
    auto logits = model->logits(model->forward(x));
    auto loss = torch::nn::functional::cross_entropy(logits.view({-1, c.vocab_size}), y.reshape({-1}));
    loss.backward();
    torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
    opt.step();
  };
  step();  // warm-up: allocator, optimizer state
  synchronize(device);
  auto t0 = Clock::now();
  for (int i = 0; i < steps; ++i) step();
  synchronize(device);
  const double s = seconds_since(t0);
  const double tps = batch * seq * steps / s;
  return {{"tokens_per_s", tps}, {"gflops", tps * c.training_flops_per_token(seq) / 1e9}};
}

// One micro-batch of GRPO's training pass as src/rl/grpo.cpp runs it: `groups` prompts of `prompt`
// tokens, each with `batch / groups` completions whose lengths alternate short / long (answers
// and reasoning differ several-fold), through forward_shared_prefix; log-probs of the real
// completion tokens, backward. With `pad` every padded position is computed (forward_shared_prefix
// without completion lengths, logits at every position).
nlohmann::json bench_grpo_pass(const r1::ModelConfig& c, int64_t batch, int64_t groups, int64_t prompt,
                               int64_t shortest, int64_t longest, bool pad, int steps, torch::Device device) {
  r1::Transformer model(c, torch::TensorOptions().device(device));
  model->init_weights(0);
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto prompts = torch::randint(c.vocab_size, {groups, prompt}, i64);
  auto completions = torch::randint(c.vocab_size, {batch, longest}, i64);
  auto group = torch::arange(batch, i64).floor_divide(batch / groups);
  std::vector<int64_t> length_list;  // every fourth completion long, the rest short
  for (int64_t r = 0; r < batch; ++r) length_list.push_back(r % 4 == 3 ? longest : shortest);
  const auto lengths = torch::tensor(length_list, i64);
  const auto real = (torch::arange(longest, i64).unsqueeze(0) < lengths.unsqueeze(1)).reshape({-1}).nonzero().squeeze(1);
  const auto prompt_lengths = torch::full({groups}, prompt, i64);
  auto step = [&] {
    model->zero_grad();
    auto [hp, hc] = model->forward_shared_prefix(prompts, prompt_lengths, completions.narrow(1, 0, longest - 1), group,
                                                 pad ? torch::Tensor() : (lengths - 1).clamp_min(0));
    auto hidden = torch::cat({hp.select(1, prompt - 1).index_select(0, group).unsqueeze(1), hc}, 1)
                      .reshape({batch * longest, -1});
    auto targets = completions.reshape({-1});
    if (!pad) hidden = hidden.index_select(0, real), targets = targets.index_select(0, real);
    auto logp = torch::log_softmax(model->logits(hidden), -1).gather(-1, targets.unsqueeze(-1));
    if (pad) logp = logp.squeeze(-1).index_select(0, real);
    (-logp.mean()).backward();
  };
  step();
  synchronize(device);
  auto t0 = Clock::now();
  for (int i = 0; i < steps; ++i) step();
  synchronize(device);
  const double s = seconds_since(t0) / steps;
  return {{"pass_s", s}, {"real_tokens", groups * prompt + real.size(0)},
          {"computed_tokens", pad ? groups * prompt + batch * longest : groups * prompt + real.size(0)}};
}

// Prompts of the decode measurement: random ids of `length`, or `given` (real prompts, cycled).
std::vector<int64_t> decode_prompt(const std::vector<std::vector<int64_t>>& given, int64_t b, int64_t vocab,
                                   int64_t length) {
  if (!given.empty()) return given[static_cast<size_t>(b) % given.size()];
  auto ids = torch::randint(vocab, {length}, torch::kInt64);
  return {ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + length};
}

nlohmann::json bench_decode(r1::Transformer model, int64_t batch, int64_t prompt, int64_t new_tokens,
                            int64_t prefill_prompt, double temperature, int repeat, bool speculative,
                            const std::vector<std::vector<int64_t>>& prompts) {
  const int64_t vocab = model->config().vocab_size;
  int64_t longest_prompt = prompt;
  for (const auto& p : prompts) longest_prompt = std::max<int64_t>(longest_prompt, p.size());
  // The decode measurement's prompts are `prompts` when given; the prefill's are always random.
  const std::vector<std::vector<int64_t>> random_prompts;
  auto make_requests = [&](int64_t rows, int64_t length, int64_t tokens,
                           const std::vector<std::vector<int64_t>>& given) {
    std::vector<r1::Request> requests(rows);
    for (int64_t b = 0; b < rows; ++b) {
      requests[b].prompt = decode_prompt(given, b, vocab, length);
      requests[b].params.temperature = temperature;
      requests[b].params.seed = static_cast<uint64_t>(b);
      requests[b].params.max_new_tokens = tokens;
      requests[b].params.ignore_eos = true;  // every sequence decodes new_tokens
    }
    return requests;
  };
  r1::EngineOptions engine_options;
  engine_options.max_batch = batch;
  engine_options.max_context = std::max(longest_prompt + new_tokens + 1, prefill_prompt + 1);
  engine_options.speculative = speculative;
  r1::Engine engine(model, nullptr, engine_options);
  engine.generate(make_requests(batch, prompt, 4, prompts));  // warm-up
  auto requests = make_requests(batch, prompt, new_tokens, prompts);
  const int64_t drafted0 = engine.drafted_tokens(), accepted0 = engine.accepted_tokens(), steps0 = engine.steps();
  std::vector<std::vector<r1::Completion>> out;
  auto t0 = Clock::now();
  for (int r = 0; r < repeat; ++r) out = engine.generate(requests);
  const double s = seconds_since(t0) / repeat;
  int64_t produced = 0;
  double decode_s = 0;  // the decode steps alone (prefill excluded): the longest sequence's
  for (const auto& g : out) {
    produced += static_cast<int64_t>(g[0].ids.size());
    decode_s = std::max(decode_s, g[0].decode_s);
  }
  const int64_t drafted = engine.drafted_tokens() - drafted0, accepted = engine.accepted_tokens() - accepted0;
  const int64_t steps = (engine.steps() - steps0) / repeat;
  // Prefill: `batch` prompts of prefill_prompt tokens, one new token each.
  auto prefill = make_requests(batch, prefill_prompt, 1, random_prompts);
  t0 = Clock::now();
  engine.generate(prefill);
  const double p = seconds_since(t0);
  return {{"tokens_per_s", produced / s}, {"decode_tokens_per_s", produced / decode_s}, {"prefill_tokens_per_s", batch * prefill_prompt / p},
          {"decode_steps", steps}, {"acceptance", drafted > 0 ? double(accepted) / drafted : 0.0},
          {"kv_cache_bytes_per_token", engine.kv_cache_bytes() / (batch * engine.max_context())}};
}

// One layer's decode attention for `batch` sequences whose prefixes hold `prefix` positions: the
// fused CPU kernel alone, over caches too large to stay in the CPU's caches between calls (as in a
// model, where each layer's cache is read once per step).
nlohmann::json bench_attention(const r1::ModelConfig& c, int64_t batch, int64_t prefix, int reps,
                               torch::ScalarType dtype) {
  torch::InferenceMode guard;
  const int64_t H = c.num_attention_heads, KV = c.num_key_value_heads, D = c.head_dim;
  const int64_t layers = std::max<int64_t>(1, (512LL << 20) / (2 * batch * KV * (prefix + 1) * D * 4));
  std::vector<torch::Tensor> k, v;
  for (int64_t l = 0; l < layers; ++l) {
    k.push_back(torch::randn({batch, KV, prefix + 1, D}).to(dtype));
    v.push_back(torch::randn({batch, KV, prefix + 1, D}).to(dtype));
  }
  const auto q = torch::randn({batch, H, 1, D}), kn = torch::randn({batch, KV, 1, D}), vn = torch::randn({batch, KV, 1, D});
  const auto positions = torch::full({batch}, prefix, torch::kInt64);
  for (int64_t l = 0; l < layers; ++l) r1::fused::decode_attention(q, kn, vn, k[l], v[l], positions);  // warm-up
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i)
    for (int64_t l = 0; l < layers; ++l) r1::fused::decode_attention(q, kn, vn, k[l], v[l], positions);
  const double s = seconds_since(t0) / (static_cast<double>(reps) * layers);
  const double bytes = 2.0 * batch * KV * (prefix + 1) * D * torch::elementSize(dtype);
  return {{"calls_per_s", 1.0 / s}, {"ms_per_call", s * 1e3}, {"cache_gb_per_s", bytes / s / 1e9}};
}

// y = x W^T for `rows` rows over weight matrices [n, k] of `type`, enough of them (cycled) that
// they stream from memory as a model's do. Paths: "r1" (decode_matmul.h's kernel), "torch"
// (libtorch's linear: MKL for float32, oneDNN for bfloat16; int8 dequantised first, as the prefill
// does), "mkl-packed" (float32 through MKL's packed GEMM, packed_matmul.h).
nlohmann::json bench_gemv(int64_t rows, int64_t n, int64_t k, const std::string& type, const std::string& path, int reps) {
  torch::InferenceMode guard;
  const int64_t type_bytes = type == "int8" ? 1 : type == "bfloat16" ? 2 : 4;
  // 1 GB of weights: well past any L3 (260-480 MB on the Xeons measured), so they stream from memory.
  const int64_t count = std::max<int64_t>(2, (1LL << 30) / (n * k * type_bytes));
  std::vector<torch::Tensor> weights;
  std::vector<r1::Int8Weight> int8;
  std::vector<r1::PackedWeight> packed(count);
  const auto w = torch::randn({n, k}) * 0.05;
  const auto q = r1::quantize_int8(w);
  for (int64_t i = 0; i < count; ++i) {  // copies: the values do not change the speed, the addresses do
    if (type == "int8") int8.push_back({q.values.clone(), q.scales.clone()});
    else weights.push_back(type == "bfloat16" ? w.to(torch::kBFloat16) : w.clone());
  }
  const auto x = torch::randn({rows, k}).to(type == "bfloat16" ? torch::kBFloat16 : torch::kFloat32);
  r1::CpuPackedMatmulScope packed_scope(path == "mkl-packed");
  auto product = [&](int64_t i) {
    if (path == "r1") {
      return r1::decode_linear(x, type == "int8" ? int8[i].rows() : *r1::weight_rows(weights[i]), {});
    }
    if (path == "mkl-packed") return packed[i].mkl_packed_linear(x, weights[i], {});
    return torch::nn::functional::linear(x, type == "int8" ? int8[i].dequantized() : weights[i]);
  };
  if (!product(0).defined()) throw std::runtime_error("gemv: path " + path + " does not take this product");
  for (int64_t i = 0; i < count; ++i) product(i);  // warm-up (and MKL's packing)
  const auto t0 = Clock::now();
  for (int r = 0; r < reps; ++r)
    for (int64_t i = 0; i < count; ++i) product(i);
  const double s = seconds_since(t0) / (static_cast<double>(reps) * count);
  return {{"gb_per_s", static_cast<double>(n * k * type_bytes) / s / 1e9}, {"gflops", 2.0 * rows * n * k / s / 1e9},
          {"us_per_product", s * 1e6}, {"isa", r1::decode_kernel_isa()}};
}

}  // namespace

int main(int argc, char** argv) {
  r1::keep_freed_memory_in_process();
  CLI::App app{"r1 benchmarks (one measurement per run, JSON on stdout)"};
  std::string preset = "bench-s";
  int threads = 2, steps = 3, reps = 20;
  int64_t batch = 8, seq = 256, n = 1024, prompt = 16, new_tokens = 128;
  std::string dtype = "float32", device = "cpu", model_dir;
  int64_t prefill_prompt = 256;
  app.add_option("--threads", threads)->capture_default_str();
  app.add_option("--device", device, "cpu or cuda (train, decode)")->capture_default_str();
  auto* matmul = app.add_subcommand("matmul");
  matmul->add_option("--n", n)->capture_default_str();
  matmul->add_option("--reps", reps)->capture_default_str();
  auto* bandwidth = app.add_subcommand("bandwidth");
  bandwidth->add_option("--reps", reps)->capture_default_str();
  auto* train = app.add_subcommand("train");
  auto* decode = app.add_subcommand("decode");
  auto* grpo_pass = app.add_subcommand("grpo-pass");
  auto* attention = app.add_subcommand("attention");
  int64_t prefix = 80;
  attention->add_option("--preset", preset)->capture_default_str();
  attention->add_option("--batch", batch)->capture_default_str();
  attention->add_option("--prefix", prefix, "positions already in each sequence's cache")->capture_default_str();
  attention->add_option("--reps", reps)->capture_default_str();
  attention->add_option("--dtype", dtype, "KV cache dtype")->capture_default_str();
  int64_t groups = 4, shortest = 32, longest = 256;
  bool pad = false;
  grpo_pass->add_option("--preset", preset)->capture_default_str();
  grpo_pass->add_option("--batch", batch, "completions in the micro-batch")->capture_default_str();
  grpo_pass->add_option("--groups", groups, "prompts they continue")->capture_default_str();
  grpo_pass->add_option("--prompt", prompt)->capture_default_str();
  grpo_pass->add_option("--shortest", shortest)->capture_default_str();
  grpo_pass->add_option("--longest", longest)->capture_default_str();
  grpo_pass->add_option("--steps", steps)->capture_default_str();
  grpo_pass->add_flag("--pad", pad, "compute the padded positions too");
  for (auto* cmd : {train, decode}) {
    cmd->add_option("--preset", preset)->capture_default_str();
    cmd->add_option("--batch", batch)->capture_default_str();
  }
  train->add_option("--seq", seq)->capture_default_str();
  train->add_option("--steps", steps)->capture_default_str();
  decode->add_option("--prompt", prompt)->capture_default_str();
  decode->add_option("--new-tokens", new_tokens)->capture_default_str();
  decode->add_option("--dtype", dtype, "weights and KV cache dtype")->capture_default_str();
  decode->add_option("--model", model_dir, "model directory (default: random weights of --preset)");
  decode->add_option("--prefill-prompt", prefill_prompt, "prompt length of the prefill measurement")->capture_default_str();
  double temperature = 0;
  decode->add_option("--temperature", temperature, "0 = greedy; GRPO's rollouts sample at 1")->capture_default_str();
  int repeat = 1;
  bool speculative = false;
  decode->add_flag("--speculative", speculative, "MTP self-speculative decoding (DeepSeek-V3 models with the module)");
  std::string prompts_file;
  decode->add_option("--prompts", prompts_file, "JSON file: a list of prompts as token-id lists (cycled over the batch)")
      ->check(CLI::ExistingFile);
  decode->add_option("--repeat", repeat, "time this many generations (mean), for profiles of the steady state")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  auto* gemv = app.add_subcommand("gemv");
  int64_t gemv_n = 1536, gemv_k = 576;
  std::string gemv_type = "float32", gemv_path = "r1";
  gemv->add_option("--rows", batch, "activation rows (sequences decoded together)")->capture_default_str();
  gemv->add_option("--n", gemv_n, "weight rows (outputs)")->capture_default_str();
  gemv->add_option("--k", gemv_k, "weight columns (inputs)")->capture_default_str();
  gemv->add_option("--type", gemv_type)->check(CLI::IsMember({"float32", "bfloat16", "int8"}))->capture_default_str();
  gemv->add_option("--path", gemv_path)->check(CLI::IsMember({"r1", "torch", "mkl-packed"}))->capture_default_str();
  gemv->add_option("--reps", reps)->capture_default_str();
  app.require_subcommand(1);
  app.fallthrough();
  CLI11_PARSE(app, argc, argv);
  torch::Device torch_device = torch::kCPU;
  try {
    torch_device = r1::open_device(device);  // (CUDA's libraries load here, for cuda)
  } catch (const r1::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  torch::set_num_threads(threads);
  torch::manual_seed(0);
  nlohmann::json r;
  if (*matmul) r = bench_matmul(n, reps);
  if (*bandwidth) r = bench_bandwidth(reps);
  if (*train) r = bench_train(r1::preset_config(preset), batch, seq, steps, torch_device);
  if (*grpo_pass)
    r = bench_grpo_pass(r1::preset_config(preset), batch, groups, prompt, shortest, longest, pad, steps,
                        torch_device);
  if (*gemv) r = bench_gemv(batch, gemv_n, gemv_k, gemv_type, gemv_path, reps);
  if (*attention) r = bench_attention(r1::preset_config(preset), batch, prefix, reps, r1::torch_dtype_from_name(dtype));
  if (*decode) {
    torch::InferenceMode guard;
    r1::Transformer model{nullptr};
    // int8 / bfloat16-weights: float32 with int8 or bfloat16 linear weights (as r1 generate's --dtype)
    std::optional<r1::WeightType> frozen;
    if (dtype == "int8") frozen = r1::WeightType::kInt8;
    if (dtype == "bfloat16-weights") frozen = r1::WeightType::kBFloat16;
    const auto scalar = frozen ? torch::kFloat32 : r1::torch_dtype_from_name(dtype);
    if (!model_dir.empty()) {
      model = r1::load_model_dir(model_dir, {torch_device, scalar, frozen});
    } else {
      model = r1::Transformer(r1::preset_config(preset), torch::TensorOptions().device(torch_device).dtype(scalar));
      model->init_weights(0);
    }
    if (frozen) model->freeze_linears(*frozen);
    std::vector<std::vector<int64_t>> prompts;
    if (!prompts_file.empty()) {
      std::ifstream in(prompts_file);
      prompts = nlohmann::json::parse(in).get<std::vector<std::vector<int64_t>>>();
    }
    r = bench_decode(model, batch, prompt, new_tokens, prefill_prompt, temperature, repeat, speculative, prompts);
    r["dtype"] = dtype;
  }
  r["peak_rss_mb"] = peak_rss_mb();
  r["threads"] = threads;
  r["device"] = device;
  std::cout << r.dump() << std::endl;
  return 0;
}
