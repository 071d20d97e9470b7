#include "rl/grpo_run.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <random>

#include "io/lora_adapter.h"
#include "io/model_dir.h"
#include "train/autocast.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

using nlohmann::json;

void check_options(const GrpoOptions& o, int64_t world) {
  o.loss.validate();
  o.schedule.validate();
  if (o.group_size < 2) throw Error("--group-size must be at least 2 (advantages compare completions of a prompt)");
  if (o.prompts_per_step < 1 || o.mu < 1 || o.micro_batch < 1) throw Error("--prompts-per-step, --mu and --micro-batch must be >= 1");
  if (!(o.temperature > 0)) throw Error("--temperature must be > 0 for GRPO rollouts");
  if (o.scale_rewards != "group" && o.scale_rewards != "batch" && o.scale_rewards != "none")
    throw Error("--scale-rewards '" + o.scale_rewards + "': expected group, batch or none");
  if (o.rank_balance != "tokens" && o.rank_balance != "none")
    throw Error("--rank-balance '" + o.rank_balance + "': expected tokens or none");
  if ((o.prompts_per_step * o.group_size) % o.micro_batch != 0)
    throw Error("--prompts-per-step x --group-size (" + std::to_string(o.prompts_per_step * o.group_size) +
                ") must be a multiple of --micro-batch (" + std::to_string(o.micro_batch) + ")");
  if (o.prompts_per_step % world != 0)
    throw Error("--prompts-per-step (" + std::to_string(o.prompts_per_step) + ") must be a multiple of the number of "
                "processes (" + std::to_string(world) + ")");
}

LaunchEnv checked_env(const GrpoOptions& o) {
  const LaunchEnv env = LaunchEnv::from_environment();
  check_options(o, env.world_size);
  return env;
}

}  // namespace

bool trains(const Rollout& r, const GrpoOptions& o) {
  return o.train_zero_advantage || (!r.masked && (r.advantage != 0 || o.loss.beta > 0));
}

GrpoRun::GrpoRun(const GrpoOptions& options)
    : o(options),
      device(options.device),
      bf16(use_bf16(options.precision, device.is_cuda())),
      env(checked_env(options)),
      dir(options.out),
      state_dir(dir / "trainer_state"),
      resuming(options.resume && fs::exists(state_dir / "state.json")) {
  if (env.distributed()) group = std::make_unique<ProcessGroup>(env, device, std::chrono::seconds(o.dist_timeout_s));
  if (!o.resume && (fs::exists(dir / "config.json") || fs::exists(dir / "adapter_config.json")))
    throw Error(o.out + " already holds a model: pass --resume to continue its run, or pick a new --out");
  if (o.init.empty() && !resuming) throw Error("r1 grpo needs --init DIR (the policy to start from)");
  load_reward();
  const std::string source = resuming ? o.out : o.init;
  tokenizer_path = fs::path(source) / "tokenizer.json";
  if (!fs::exists(tokenizer_path)) throw Error(source + ": no tokenizer.json");
  tokenizer = std::make_unique<Tokenizer>(Tokenizer::load(tokenizer_path.string()));
  prompts = read_prompts(o.prompts, o.prompt_template, o.chat_template, *tokenizer);
  fs::create_directories(dir);
  if (main_rank() && !o.args_toml.empty()) write_text_file((dir / "args.toml").string(), o.args_toml);
  load_models();
  restore_position();

  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.ids.size());
  EngineOptions engine_options;
  engine_options.max_batch = o.prompts_per_step / world() * o.group_size;
  if (o.rollout_batch > 0) {  // a prompt's group is decoded together (it shares the prompt's rows)
    if (o.rollout_batch < o.group_size)
      throw Error("--rollout-batch " + std::to_string(o.rollout_batch) + " is below --group-size " +
                  std::to_string(o.group_size) + ": a prompt's completions are decoded together");
    engine_options.max_batch = std::min(engine_options.max_batch, o.rollout_batch);
  }
  engine_options.max_context = static_cast<int64_t>(longest) + o.max_completion_tokens;
  engine_options.int8_weights = o.rollout_dtype == "int8";
  engine = std::make_unique<Engine>(policy, tokenizer.get(), engine_options);
  if (main_rank())
    std::fprintf(stderr, "rollouts: %lld sequences decoded at once per rank, KV cache %.4g MB\n",
                 static_cast<long long>(engine_options.max_batch), engine->kv_cache_bytes() / 1e6);
  heldout = std::make_unique<HeldoutEval>(o.heldout, o.prompt_template, *tokenizer,
                                          chat_prompt_format(o.prompt_template, o.chat_template, *tokenizer),
                                          reward_options);
}

void GrpoRun::load_reward() {
  reward_options = o.reward_options;
  reward_options.model_reward = [this](const std::string& rm_dir) {
    const fs::path saved = state_dir / "reward_model";
    const std::string from = resuming && fs::exists(saved / "config.json") ? saved.string() : rm_dir;
    if (!fs::exists(fs::path(from) / "tokenizer.json")) throw Error(from + ": no tokenizer.json beside the reward model");
    if (!is_reward_model_dir(from)) throw Error("--reward rm:" + from + ": not a reward model (train one with r1 rm train)");
    if (is_lora_adapter_dir(from) && o.rm_updates.every > 0)
      throw Error("--rm-update-every with a LoRA reward model (" + from + "): merge it first (r1 model merge-lora)");
    rm_tokenizer_file = (fs::path(from) / "tokenizer.json").string();
    rm_tokenizer = std::make_shared<Tokenizer>(Tokenizer::load(rm_tokenizer_file));
    rm_scorer = std::make_shared<RewardModelScorer>(load_reward_model(from, device), rm_tokenizer.get(), 1024,
                                                    o.micro_batch);
    return reward_model_reward(rm_scorer);  // --rm-normalize: over the whole step (grpo_rollouts.cpp)
  };
  reward = std::make_unique<CombinedReward>(o.reward, reward_options);
  label_reward = reward->first_rule_reward();
  accuracy_reward = label_reward.empty() ? reward->parts()[0].name : label_reward;
  if (o.rm_updates.every <= 0) return;
  if (!rm_scorer) throw Error("--rm-update-every needs a learned reward in --reward (rm:DIR)");
  if (label_reward.empty())
    throw Error("--rm-update-every labels fresh samples with a rule-based reward: add one to --reward "
                "(weight 0 to only label, e.g. rm:DIR:1,accuracy_math:0)");
  RmUpdateOptions u = o.rm_updates;
  u.seed = o.seed;
  iterative = std::make_unique<IterativeRewardModel>(rm_scorer, rm_tokenizer.get(), rm_tokenizer_file, u);
  if (resuming) iterative->load(state_dir.string());
}

void GrpoRun::load_models() {
  policy = load_model_dir(resuming ? o.out : o.init, {device, torch::kFloat32});
  lora = attach_lora(policy, o.lora, resuming ? o.out : o.init, o.seed);
  if (lora.active() && o.ref_reset_every > 0)
    throw Error("--ref-reset-every with LoRA: the reference is the base model without the adapters; merge the "
                "adapters (r1 model merge-lora) to start a new round from the trained policy");
  sampled_vocab = std::min<int64_t>(tokenizer->vocab_size(), policy->config().vocab_size);
  {  // the rollout sampling options, checked before any work
    SamplingParams p;
    p.temperature = o.temperature, p.top_p = o.top_p, p.top_k = o.top_k, p.min_p = o.min_p;
    p.repetition_penalty = o.repetition_penalty;
    p.validate(policy->config().vocab_size);
  }
  if (o.loss.beta > 0 && !lora.active()) {  // with LoRA the reference is the policy without its adapters
    const fs::path saved_ref = state_dir / "reference";
    // The reference only scores (no gradients): with bf16 products its fp32 weights would be
    // rounded to bf16 at every product anyway, so bf16 storage halves it at little cost.
    const bool bf16_reference = o.reference_dtype == "bf16" || (o.reference_dtype == "auto" && bf16);
    reference = load_model_dir(resuming && fs::exists(saved_ref) ? saved_ref.string() : o.init,
                               {device, bf16_reference ? torch::kBFloat16 : torch::kFloat32});
    reference->eval();
    for (auto& p : reference->parameters()) p.set_requires_grad(false);
  }
  if (group) {  // every rank starts from rank 0's weights
    std::vector<torch::Tensor> params;
    for (auto& p : policy->parameters()) params.push_back(p.detach());
    group->broadcast(params);
  }
  policy->set_checkpoint_activations(o.checkpoint_activations);
  // GRPO's loss does not reach the multi-token prediction modules: they stay as they are.
  policy->freeze_mtp_modules();
  optimizer = std::make_unique<TrainingOptimizer>(
      policy, AdamWSettings{o.schedule.max_lr, o.beta1, o.beta2, o.adam_eps, o.weight_decay}, o.zero, group.get());
  balance = std::make_unique<ExpertBalance>(policy, o.balance, group.get());
}

void GrpoRun::restore_position() {
  if (resuming) {
    const auto state = read_json_file((state_dir / "state.json").string());
    step = state.at("step").get<int64_t>();
    cursor = state.at("cursor").get<uint64_t>();
    epoch = state.at("epoch").get<uint64_t>();
    optimizer->load(state_dir.string());
  }
  if (main_rank()) {
    keep_jsonl_steps_up_to((dir / "metrics.jsonl").string(), step);  // a resumed run redoes the later ones
    keep_jsonl_steps_up_to((dir / "samples.jsonl").string(), step);
  }
  shuffle();
}

// Prompt order: a seeded shuffle per epoch; the cursor is part of the checkpoint.
void GrpoRun::shuffle() {
  order_.resize(prompts.size());
  std::iota(order_.begin(), order_.end(), 0);
  std::mt19937_64 rng(splitmix64(o.seed * 7919 + epoch));
  std::shuffle(order_.begin(), order_.end(), rng);
}

size_t GrpoRun::next_prompt() {
  if (cursor == order_.size()) {
    cursor = 0;
    ++epoch;
    shuffle();
  }
  return order_[cursor++];
}

double GrpoRun::set_learning_rate() {
  const double lr = o.schedule.at(step);
  optimizer->set_lr(lr);
  return lr;
}

void GrpoRun::evaluate_heldout(int64_t done) {
  if (!heldout->due(done, o.steps)) return;
  const auto whole = optimizer->whole_weights();  // --zero 3: every rank answers its share whole
  const HeldoutResult h = heldout->run(policy, group.get());
  if (!main_rank()) return;
  std::fprintf(stderr, "held-out after step %lld: accuracy %.3f (answered %.3f, boxed %.3f), %.0f tokens, %.0f s\n",
               static_cast<long long>(done), h.accuracy, h.answer_rate, h.boxed_rate, h.response_tokens, h.seconds);
  std::ofstream(dir / "metrics.jsonl", std::ios::app) << h.to_json(done).dump() << "\n";
}

void GrpoRun::save(int64_t done) {
  SaveOptions s;
  s.write_extra = [&](const std::string& out) {
    const fs::path st = fs::path(out) / "trainer_state";
    fs::create_directories(st);
    optimizer->save_into(st.string(), dir.string());
    write_text_file((st / "state.json").string(),
                    json{{"step", done}, {"cursor", cursor}, {"epoch", epoch}, {"seed", o.seed}}.dump(2) + "\n");
    if (reference) save_model_dir(reference, (st / "reference").string());
    if (iterative) iterative->save(st.string());
    copy_tokenizer_files(tokenizer_path.string(), out);  // with the chat template
  };
  save_trained(policy, lora, o.out, s);
}

}  // namespace r1
