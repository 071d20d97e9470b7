#include "train/pretrain.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include "train/batch_source.h"
#include "io/model_dir.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

// DeepSeek and most LLM recipes: no weight decay on norms and biases (1-D parameters).
torch::optim::AdamW make_adamw(Transformer& model, const PretrainOptions& o) {
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model->named_parameters()) (p.value().dim() >= 2 ? decay : no_decay).push_back(p.value());
  auto opts = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(o.schedule.max_lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, opts(o.weight_decay));
  groups.emplace_back(no_decay, opts(0.0));
  return torch::optim::AdamW(groups, torch::optim::AdamWOptions(o.schedule.max_lr));
}

// Keeps only metrics lines of steps up to `step`, the checkpoint's (a resumed run redoes the later ones).
void truncate_metrics(const fs::path& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).value("step", int64_t(-1)) <= step) kept += line + "\n";
    } catch (const nlohmann::json::exception&) {  // a line cut by a crash
    }
  }
  in.close();
  write_text_file(path.string(), kept);
}

}  // namespace

int64_t pretrain(const PretrainOptions& o, const std::atomic<bool>* stop,
                 const std::function<void(const StepMetrics&)>& on_step) {
  o.schedule.validate();
  const torch::Device device(o.device);
  const Tokenizer tokenizer = Tokenizer::load(o.tokenizer);
  const fs::path run(o.out);
  const fs::path state_dir = run / "trainer_state";
  const bool resuming = o.resume && fs::exists(state_dir / "state.json");
  if (!o.resume && fs::exists(run / "config.json"))
    throw Error(o.out + " already holds a model: pass --resume to continue its run, or pick a new --out");
  fs::create_directories(run);

  Transformer model{nullptr};
  if (resuming) {
    model = load_model_dir(o.out, {device, torch::kFloat32});
  } else if (!o.init_dir.empty()) {
    model = load_model_dir(o.init_dir, {device, torch::kFloat32});
  } else {
    model = Transformer(o.config, torch::TensorOptions().device(device));
    model->init_weights(o.seed);
  }
  if (tokenizer.vocab_size() > model->config().vocab_size)
    throw Error("the tokenizer has " + std::to_string(tokenizer.vocab_size()) + " tokens but the model's vocab_size is " +
                std::to_string(model->config().vocab_size));
  const int64_t per_step_sequences = o.batch_tokens / o.seq_len;
  if (per_step_sequences < 1 || per_step_sequences % o.micro_batch != 0)
    throw Error("--batch-tokens " + std::to_string(o.batch_tokens) + " must be a multiple of --seq-len x --micro-batch (" +
                std::to_string(o.seq_len * o.micro_batch) + ")");
  const int64_t accumulation = per_step_sequences / o.micro_batch;

  std::unique_ptr<BatchSource> source;
  if (o.stage == "sft") {
    const ChatFormat format = o.chat_template.empty() ? chat_format_from_jinja(tokenizer.chat_template())
                                                      : chat_format_from_name(o.chat_template);
    source = std::make_unique<ConversationSource>(o.data, tokenizer, format, o.seq_len, o.seed, o.skip_bad_lines);
  } else {
    source = std::make_unique<PackedSource>(o.data, o.seq_len, o.seed, tokenizer.fingerprint());
  }
  torch::optim::AdamW optimizer = make_adamw(model, o);
  int64_t step = 0;
  if (resuming) {
    const auto state = read_json_file((state_dir / "state.json").string());
    step = state.at("step").get<int64_t>();
    source->restore(state.at("data"));
    torch::load(optimizer, (state_dir / "optimizer.pt").string());
  }
  truncate_metrics(run / "metrics.jsonl", step);

  auto save = [&](int64_t done_steps) {
    SaveOptions save_opts;
    save_opts.write_extra = [&](const std::string& dir) {
      const fs::path st = fs::path(dir) / "trainer_state";
      fs::create_directories(st);
      torch::save(optimizer, (st / "optimizer.pt").string());
      const nlohmann::json state = {{"step", done_steps}, {"data", source->state()}, {"seed", o.seed},
                                    {"seq_len", o.seq_len}, {"batch_tokens", o.batch_tokens}};
      write_text_file((st / "state.json").string(), state.dump(2) + "\n");
      fs::copy_file(o.tokenizer, fs::path(dir) / "tokenizer.json", fs::copy_options::overwrite_existing);
    };
    save_model_dir(model, o.out, save_opts);
  };

  model->train();
  while (step < o.steps) {
    const auto t0 = std::chrono::steady_clock::now();
    const double lr = o.schedule.at(step);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    optimizer.zero_grad();
    double loss_sum = 0;
    for (int64_t micro = 0; micro < accumulation; ++micro) {
      auto [tokens, mask] = source->next(o.micro_batch);
      tokens = tokens.to(device);
      mask = mask.to(device);
      const int64_t T = tokens.size(1) - 1;
      auto x = tokens.narrow(1, 0, T), y = tokens.narrow(1, 1, T);
      auto logits = model->logits(model->forward(x));
      namespace F = torch::nn::functional;
      auto per_token = F::cross_entropy(logits.reshape({-1, logits.size(-1)}), y.reshape({-1}),
                                        F::CrossEntropyFuncOptions().reduction(torch::kNone));
      // Mean over the targets that count (all in pretraining, assistant tokens in SFT).
      auto loss = (per_token * mask.reshape({-1})).sum() / mask.sum().clamp_min(1.0) / static_cast<double>(accumulation);
      loss.backward();
      loss_sum += loss.item<double>();
    }
    const double grad_norm = torch::nn::utils::clip_grad_norm_(model->parameters(), o.clip);
    optimizer.step();
    ++step;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const StepMetrics m{step, loss_sum, lr, grad_norm, static_cast<double>(o.batch_tokens) / seconds};
    if (step % o.log_every == 0 || step == o.steps) {
      std::ofstream metrics(run / "metrics.jsonl", std::ios::app);
      metrics << nlohmann::json{{"stage", o.stage}, {"step", m.step}, {"loss", m.loss}, {"lr", m.lr},
                                {"grad_norm", m.grad_norm}, {"tokens_per_s", m.tokens_per_s}}.dump()
              << "\n";
    }
    if (on_step) on_step(m);
    const bool stopping = stop && stop->load();
    if (step == o.steps || stopping || (o.save_every > 0 && step % o.save_every == 0)) save(step);
    if (stopping) break;
  }
  return step;
}

}  // namespace r1
