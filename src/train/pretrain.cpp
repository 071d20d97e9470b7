#include "train/pretrain.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <filesystem>

#include <fstream>
#include <optional>

#include "dist/process_group.h"
#include "train/expert_balance.h"
#include "infer/engine.h"
#include "train/autocast.h"
#include "train/batch_source.h"
#include "train/training_optimizer.h"
#include "io/lora_adapter.h"
#include "io/model_dir.h"
#include "model/vocab_logprobs.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

// The init model with a scaled RoPE: same weights, new config (DeepSeek-Coder: linear x4, 4K -> 16K).
Transformer with_rope_scaling(Transformer base, const std::string& spec, torch::Device device) {
  const size_t colon = spec.find(':');
  ModelConfig c = base->config();
  double factor = 0;
  try {
    factor = std::stod(spec.substr(colon + 1));
  } catch (const std::exception&) {
  }
  if (colon == std::string::npos || !(factor > 1))
    throw Error("--rope-scaling '" + spec + "': expected TYPE:FACTOR with FACTOR > 1, e.g. linear:4 or yarn:4");
  c.rope_scaling = RopeScaling{};
  c.rope_scaling.type = spec.substr(0, colon);
  c.rope_scaling.factor = factor;
  if (c.rope_scaling.type == "yarn" || c.rope_scaling.type == "llama3")
    c.rope_scaling.original_max_position_embeddings = c.max_position_embeddings;
  if (c.rope_scaling.type == "yarn" && c.is_deepseek()) {
    // DeepSeek-V2/V3's own YaRN (V3 report §4.3): the attention temperature sqrt(t) = 0.1 ln(s) + 1
    // goes into the softmax scale (mscale_all_dim, squared there), the rotary frequencies unscaled.
    c.rope_scaling.mscale = 1.0;
    c.rope_scaling.mscale_all_dim = 1.0;
  }
  if (c.rope_scaling.type != "dynamic") c.max_position_embeddings = static_cast<int64_t>(c.max_position_embeddings * factor);
  try {
    c.validate();
    if (c.rope_scaling.type != "linear" && c.rope_scaling.type != "dynamic" && c.rope_scaling.type != "yarn" &&
        c.rope_scaling.type != "llama3")
      throw Error("unknown type (linear, dynamic, yarn, llama3)");
  } catch (const Error& e) {
    throw Error("--rope-scaling '" + spec + "': " + e.what());
  }
  Transformer scaled(c, torch::TensorOptions().device(device));
  torch::NoGradGuard no_grad;
  auto src = base->named_parameters();
  for (auto& p : scaled->named_parameters()) p.value().copy_(src[p.key()]);
  return scaled;
}



// RUN/checkpoints/step-NNNNNNNN: a model directory (weights, tokenizer, trainer_state) of this
// save, hard-linked from the run (no copy of the weights); the oldest beyond `keep` are removed.
void keep_snapshot(const fs::path& run, int64_t step, int64_t keep) {
  const fs::path dir = run / "checkpoints";
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
  const fs::path tmp = dir / (std::string(".") + name + ".tmp");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  for (const auto& e : fs::directory_iterator(run)) {
    const std::string file = e.path().filename().string();
    if (file == "checkpoints" || file == "metrics.jsonl" || file == "samples.jsonl") continue;
    link_tree(e.path().string(), (tmp / file).string());
  }
  fs::remove_all(dir / name);
  fs::rename(tmp, dir / name);
  std::vector<fs::path> kept;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("step-", 0) == 0) kept.push_back(e.path());
  std::sort(kept.begin(), kept.end());
  for (size_t i = 0; i + keep < kept.size(); ++i) fs::remove_all(kept[i]);
}

}  // namespace

int64_t pretrain(const PretrainOptions& o, const std::atomic<bool>* stop,
                 const std::function<void(const StepMetrics&)>& on_step) {
  o.schedule.validate();
  const torch::Device device(o.device);
  const Tokenizer tokenizer = Tokenizer::load(o.tokenizer);
  const bool bf16 = use_bf16(o.precision, device.is_cuda());
  const fs::path run(o.out);
  const fs::path state_dir = run / "trainer_state";
  const bool resuming = o.resume && fs::exists(state_dir / "state.json");
  if (!o.resume && (fs::exists(run / "config.json") || fs::exists(run / "adapter_config.json")))
    throw Error(o.out + " already holds a model: pass --resume to continue its run, or pick a new --out");
  fs::create_directories(run);
  // Data parallelism: every rank runs this loop on its share of each step's batch; rank 0 alone
  // writes logs, samples and checkpoints.
  const LaunchEnv env = LaunchEnv::from_environment();
  std::unique_ptr<ProcessGroup> group;
  if (env.distributed()) group = std::make_unique<ProcessGroup>(env, device, std::chrono::seconds(o.dist_timeout_s));
  const bool main_rank = env.is_main();
  if (main_rank && !o.args_toml.empty()) write_text_file((run / "args.toml").string(), o.args_toml);

  Transformer model{nullptr};
  if (resuming) {
    model = load_model_dir(o.out, {device, torch::kFloat32});
  } else if (!o.init_dir.empty()) {
    model = load_model_dir(o.init_dir, {device, torch::kFloat32});
    if (!o.rope_scaling.empty()) model = with_rope_scaling(model, o.rope_scaling, device);
  } else {
    model = Transformer(o.config, torch::TensorOptions().device(device));
    model->init_weights(o.seed);
  }
  model->set_checkpoint_activations(o.checkpoint_activations);
  if (o.lora.rank > 0 && o.init_dir.empty() && !resuming) throw Error("--lora-rank trains adapters of a model: give --init DIR");
  const RunLora lora = attach_lora(model, o.lora, resuming ? o.out : o.init_dir, o.seed);
  if (!o.rope_scaling.empty() && o.init_dir.empty() && !resuming)
    throw Error("--rope-scaling extends a trained model: give --init DIR");
  if (tokenizer.vocab_size() > model->config().vocab_size)
    throw Error("the tokenizer has " + std::to_string(tokenizer.vocab_size()) + " tokens but the model's vocab_size is " +
                std::to_string(model->config().vocab_size));
  const int64_t per_step_sequences = o.batch_tokens / o.seq_len;
  const int64_t per_pass = o.micro_batch * env.world_size;  // sequences in one forward of every rank
  if (per_step_sequences < 1 || per_step_sequences % per_pass != 0 || o.batch_tokens % o.seq_len != 0)
    throw Error("--batch-tokens " + std::to_string(o.batch_tokens) + " must be a multiple of --seq-len x --micro-batch" +
                (env.distributed() ? " x world size (" : " (") + std::to_string(o.seq_len * per_pass) + ")");
  const int64_t accumulation = per_step_sequences / per_pass;
  if (group) {  // every rank starts from rank 0's weights
    std::vector<torch::Tensor> params;
    for (auto& p : model->parameters()) params.push_back(p.detach());
    group->broadcast(params);
  }

  auto make_source = [&](const std::string& data, uint64_t seed) -> std::unique_ptr<BatchSource> {
    if (o.stage == "sft") {
      std::optional<ChatFormat> format;
      std::string why_none;
      if (!o.chat_template.empty()) {
        format = chat_format_from_name(o.chat_template);
      } else {
        try {  // only messages rows need a template; prompt-completion rows are used as they are
          format = chat_format_from_jinja(tokenizer.chat_template());
        } catch (const Error& e) {
          why_none = e.what();
        }
      }
      std::optional<int32_t> eos;
      if (!model->config().eos_token_ids.empty()) eos = static_cast<int32_t>(model->config().eos_token_ids[0]);
      return std::make_unique<ConversationSource>(data, tokenizer, format, o.seq_len, seed, o.skip_bad_lines, why_none,
                                                  eos, o.pack);
    }
    return std::make_unique<PackedSource>(data, o.seq_len, seed, tokenizer.fingerprint());
  };
  std::unique_ptr<BatchSource> source = make_source(o.data, o.seed);
  // Summed cross-entropy (nats) over the targets that count. With `mtp`, also the multi-token
  // prediction loss (--mtp-weight) from the same forward: module k's loss on token i + k + 1 at
  // every position i whose target counts, summed alike, averaged over the modules.
  namespace F = torch::nn::functional;
  const auto summed_ce = [](const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& mask) {
    auto per_token = F::cross_entropy(logits.to(torch::kFloat32).reshape({-1, logits.size(-1)}), targets.reshape({-1}),
                                      F::CrossEntropyFuncOptions().reduction(torch::kNone));
    return (per_token * mask.reshape({-1})).sum();
  };
  // The head's log-probs of the next tokens a chunk of rows at a time (model/vocab_logprobs.h): no
  // [tokens, vocabulary] logits, log-softmax or gradient (0.5 GB each at 8 x 1024 tokens of a
  // 16K vocabulary) is kept.
  const auto next_token_nats = [&](const torch::Tensor& hidden, const torch::Tensor& targets, const torch::Tensor& mask) {
    if (!chunked_logprobs_enabled()) {
      AutocastScope autocast(bf16, device.type());
      return summed_ce(model->logits(hidden), targets, mask);
    }
    const auto flat = hidden.reshape({-1, hidden.size(-1)});
    const auto weight = model->head_weight();
    const auto logp = vocab_logprobs(flat, weight, targets.reshape({-1}), weight.size(0), 1.0, bf16, 256, false).first;
    return -(logp * mask.reshape({-1}).to(logp.scalar_type())).sum();
  };
  auto masked_loss = [&](const TrainBatch& batch, torch::Tensor* mtp = nullptr) {
    const auto tokens = batch.tokens.to(device), mask = batch.mask.to(device);
    const int64_t T = tokens.size(1) - 1;
    torch::Tensor hidden;
    std::vector<torch::Tensor> depths;
    {
      AutocastScope autocast(bf16, device.type());
      const auto inputs = tokens.narrow(1, 0, T);
      hidden = batch.segments.defined() ? model->forward_packed(inputs, batch.segments.to(device))
                                        : model->forward(inputs);
      if (mtp) depths = model->mtp_logits(hidden, inputs);
    }
    if (mtp) {
      *mtp = torch::zeros({}, torch::TensorOptions().device(device));
      for (size_t k = 1; k <= depths.size(); ++k) {  // depth k's logits [B, T - k, V]: targets k + 1 .. T
        const int64_t n = depths[k - 1].size(1);
        *mtp = *mtp + summed_ce(depths[k - 1], tokens.narrow(1, k + 1, n), mask.narrow(1, k, n));
      }
      *mtp = *mtp / static_cast<double>(std::max<size_t>(depths.size(), 1));
    }
    return next_token_nats(hidden, tokens.narrow(1, 1, T), mask);
  };
  // Validation: the same held-out batches every time (a fresh reader, fixed seed). Bits per byte
  // divide by the UTF-8 bytes the target tokens stand for, so tokenizers compare fairly.
  auto validate = [&](StepMetrics& m) {
    torch::NoGradGuard no_grad;
    auto val = make_source(o.val_data, 1234567);
    double nats = 0, count = 0, bytes = 0;
    for (int64_t b = 0; b < o.eval_batches; ++b) {
      const TrainBatch batch = val->next(o.micro_batch);
      const auto& tokens = batch.tokens;
      const auto& mask = batch.mask;
      nats += masked_loss(batch).item<double>();
      count += mask.sum().item<double>();
      auto acc = tokens.accessor<int64_t, 2>();
      auto macc = mask.accessor<float, 2>();
      for (int64_t r = 0; r < tokens.size(0); ++r)
        for (int64_t t = 0; t + 1 < tokens.size(1); ++t)
          if (macc[r][t] > 0) bytes += tokenizer.decode_bytes({static_cast<int32_t>(acc[r][t + 1])}).size();
    }
    m.val_loss = nats / std::max(count, 1.0);
    m.val_bpb = nats / std::log(2.0) / std::max(bytes, 1.0);
  };
  const double flops_per_token = model->config().training_flops_per_token(o.seq_len);
  // Without --mtp-weight no loss reaches the multi-token prediction modules: they stay as they are
  // (an optimizer step on a zero gradient would still decay them).
  if (o.mtp_weight == 0) model->freeze_mtp_modules();
  TrainingOptimizer optimizer(model, {o.schedule.max_lr, o.beta1, o.beta2, o.eps, o.weight_decay}, o.zero, group.get());
  int64_t step = 0;
  if (resuming) {
    const auto state = read_json_file((state_dir / "state.json").string());
    step = state.at("step").get<int64_t>();
    source->restore(state.at("data"));
    optimizer.load(state_dir.string());
  }
  if (main_rank) keep_jsonl_steps_up_to((run / "metrics.jsonl").string(), step);  // a resumed run redoes the later ones

  auto save = [&](int64_t done_steps) {
    SaveOptions save_opts;
    save_opts.write_extra = [&](const std::string& dir) {
      const fs::path st = fs::path(dir) / "trainer_state";
      fs::create_directories(st);
      optimizer.save_into(st.string(), run.string());
      const nlohmann::json state = {{"step", done_steps}, {"data", source->state()}, {"seed", o.seed},
                                    {"seq_len", o.seq_len}, {"batch_tokens", o.batch_tokens}};
      write_text_file((st / "state.json").string(), state.dump(2) + "\n");
      copy_tokenizer_files(o.tokenizer, dir);  // SFT of a chat model keeps its chat template
    };
    save_trained(model, lora, o.out, save_opts);
    if (o.keep_checkpoints > 0) keep_snapshot(run, done_steps, o.keep_checkpoints);
  };

  if (o.mtp_weight > 0) {
    const ModelConfig& c = model->config();
    if (!c.is_deepseek() || c.mtp_layers == 0)
      throw Error("--mtp-weight: the model has no multi-token prediction modules (a DeepSeek-V3 config with "
                  "num_nextn_predict_layers >= 1 has them)");
    if (o.pack) throw Error("--mtp-weight does not work with --pack yet (its modules would look across documents)");
  }
  ExpertBalance balance(model, o.balance, group.get());
  model->train();
  while (step < o.steps) {
    const auto t0 = std::chrono::steady_clock::now();
    const double lr = o.schedule.at(step);
    optimizer.set_lr(lr);
    optimizer.zero_grad();
    balance.begin_step();
    // The step's global batch is world x accumulation micro-batches, read in the same order by
    // every rank (so the data position is the same everywhere and the result equals one process
    // with a world-times larger batch); rank r trains on micro-batches [r x acc, (r + 1) x acc).
    // The loss is the mean over all targets of the global batch (all tokens in pretraining,
    // assistant tokens in SFT), so micro-batches of different sizes weigh by their token counts.
    const auto d0 = std::chrono::steady_clock::now();
    std::vector<TrainBatch> mine;
    double targets = 0;
    for (int64_t i = 0; i < env.world_size * accumulation; ++i) {
      TrainBatch batch = source->next(o.micro_batch);
      targets += batch.mask.sum().item<double>();
      if (i / accumulation == env.rank) mine.push_back(std::move(batch));
    }
    const double data_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - d0).count();
    double loss_sum = 0;
    double mtp_sum = 0;
    for (const TrainBatch& batch : mine) {
      torch::Tensor mtp;
      auto loss = masked_loss(batch, o.mtp_weight > 0 ? &mtp : nullptr) / std::max(targets, 1.0);
      loss_sum += loss.item<double>();
      if (mtp.defined()) {
        mtp = mtp / std::max(targets, 1.0);
        mtp_sum += mtp.item<double>();
        loss = loss + o.mtp_weight * mtp;
      }
      // MoE layers' balance loss: the mean over the global batch's micro-batches.
      if (balance.active()) loss = loss + balance.take_loss().to(loss.device()) / double(env.world_size * accumulation);
      loss.backward();
      optimizer.after_backward();
    }
    bool stopping = stop && stop->load();
    if (group) {
      // The loss, and whether any rank was asked to stop (all must stop at the same step).
      auto shared = torch::tensor({loss_sum, stopping ? 1.0 : 0.0, mtp_sum}, torch::kFloat64).to(device);
      group->all_reduce_sum({shared});
      loss_sum = shared[0].item<double>();
      stopping = shared[1].item<double>() > 0;
      mtp_sum = shared[2].item<double>();
    }
    const double grad_norm = optimizer.step(o.clip);
    const nlohmann::json balance_metrics = balance.after_step();
    ++step;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double tokens_per_s = static_cast<double>(o.batch_tokens) / seconds;
    StepMetrics m{step, loss_sum, lr, grad_norm, tokens_per_s,
                  tokens_per_s * flops_per_token / (o.peak_tflops * 1e12 * env.world_size)};
    const bool saving = step == o.steps || stopping || (o.save_every > 0 && step % o.save_every == 0);
    if (saving) optimizer.stage(run.string());  // --zero 1-3: every rank writes its optimizer shard
    const bool evaluate = !o.val_data.empty() && o.eval_every > 0 && (step % o.eval_every == 0 || step == o.steps);
    const bool sample = o.sample_every > 0 && (step % o.sample_every == 0 || step == o.steps);
    // --zero 3: rank 0 evaluates, samples and saves with every weight whole, gathered by all ranks.
    std::optional<TrainingOptimizer::WholeWeights> whole;
    if (saving || evaluate || sample) whole.emplace(optimizer.whole_weights());
    if (!main_rank) {
      if (stopping) break;
      continue;
    }
    if (evaluate) validate(m);
    if (step % o.log_every == 0 || step == o.steps || evaluate) {
      nlohmann::json line = {{"stage", o.stage}, {"step", m.step}, {"loss", m.loss}, {"lr", m.lr},
                             {"grad_norm", m.grad_norm}, {"tokens_per_s", m.tokens_per_s}, {"mfu", m.mfu},
                             {"step_s", seconds}, {"data_s", data_seconds}};
      line.update(balance_metrics);
      if (o.mtp_weight > 0) line["mtp_loss"] = mtp_sum;
      if (evaluate) {
        line["val_loss"] = m.val_loss;
        line["val_bpb"] = m.val_bpb;
      }
      std::ofstream(run / "metrics.jsonl", std::ios::app) << line.dump() << "\n";
    }
    if (sample) {
      // What the model says now: greedy, from the prompt (with BOS when the tokenizer adds one).
      auto prompt = tokenizer.encode(o.sample_prompt, true);
      if (prompt.empty() && tokenizer.eos_id()) prompt.push_back(*tokenizer.eos_id());
      Request request;
      request.prompt.assign(prompt.begin(), prompt.end());
      request.params.temperature = 0;
      request.params.max_new_tokens = o.sample_tokens;
      EngineOptions engine_options;
      engine_options.max_batch = 1;
      engine_options.max_context = static_cast<int64_t>(prompt.size()) + o.sample_tokens;
      Engine engine(model, &tokenizer, engine_options);
      const auto out = engine.generate({request});
      std::ofstream(run / "samples.jsonl", std::ios::app)
          << nlohmann::json{{"stage", o.stage}, {"step", step}, {"prompt", o.sample_prompt},
                            {"completion", out[0][0].text}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
          << "\n";
      model->train();
    }
    if (on_step) on_step(m);
    if (saving) save(step);
    if (stopping) break;
  }
  return step;
}

}  // namespace r1
