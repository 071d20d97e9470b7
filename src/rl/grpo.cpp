#include "rl/grpo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>

#include "dist/launch_env.h"
#include "dist/process_group.h"
#include "infer/engine.h"
#include "io/model_dir.h"
#include "model/vocab_logprobs.h"
#include "rl/prompts.h"
#include "rl/rank_balance.h"
#include "rm/reward_model.h"
#include "tokenizer/chat_template.h"
#include "train/autocast.h"
#include "train/expert_balance.h"
#include "train/optimizer.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// One completion ready for training.
struct Rollout {
  std::vector<int64_t> tokens;  // prompt + completion
  std::vector<float> sampled_logprobs;  // the engine's log-prob of each completion token (at the rollout temperature)
  int64_t prompt_len = 0, completion_len = 0;
  int64_t group = 0;  // which prompt of the step it answers (its group's rollouts share the prompt's forward)
  double advantage = 0;
  bool masked = false;  // truncated with --mask-truncated
};

// Whether a rollout gets a forward and backward. Without the KL term (beta = 0) a rollout whose
// advantage is exactly 0 (every completion of a group whose rewards are all equal: all right or
// all wrong, most groups late in a run) adds exactly 0 to the gradient, as does a masked one:
// skipping them leaves the update unchanged, since the normalisers (N, total_tokens) still count
// them. --train-zero-advantage trains every rollout, as TRL does.
bool trains(const Rollout& r, const GrpoOptions& o) {
  return o.train_zero_advantage || (!r.masked && (r.advantage != 0 || o.loss.beta > 0));
}

// Data parallel (--rank-balance tokens): every rank's rollouts go to every rank (a byte
// all-gather), and each keeps those balance_ranks deals it by trained tokens (rank_balance.h).
std::vector<Rollout> deal_rollouts(const std::vector<Rollout>& mine, ProcessGroup& group, const GrpoOptions& o) {
  std::string bytes;
  const auto put = [&](const void* p, size_t n) { bytes.append(static_cast<const char*>(p), n); };
  for (const Rollout& r : mine) {
    const int64_t head[6] = {static_cast<int64_t>(r.tokens.size()), static_cast<int64_t>(r.sampled_logprobs.size()),
                             r.prompt_len, r.completion_len, r.group, r.masked};
    put(head, sizeof head);
    put(&r.advantage, sizeof r.advantage);
    put(r.tokens.data(), r.tokens.size() * sizeof(int64_t));
    put(r.sampled_logprobs.data(), r.sampled_logprobs.size() * sizeof(float));
  }
  std::vector<Rollout> all;
  for (const std::string& from : group.all_gather_strings(bytes)) {
    for (size_t at = 0; at < from.size();) {
      const auto take = [&](void* p, size_t n) {
        if (at + n > from.size()) throw Error("GRPO: a rank sent a truncated rollout list");
        std::memcpy(p, from.data() + at, n);
        at += n;
      };
      int64_t head[6];
      take(head, sizeof head);
      Rollout r;
      take(&r.advantage, sizeof r.advantage);
      r.tokens.resize(static_cast<size_t>(head[0]));
      r.sampled_logprobs.resize(static_cast<size_t>(head[1]));
      take(r.tokens.data(), r.tokens.size() * sizeof(int64_t));
      take(r.sampled_logprobs.data(), r.sampled_logprobs.size() * sizeof(float));
      r.prompt_len = head[2], r.completion_len = head[3], r.group = head[4], r.masked = head[5] != 0;
      all.push_back(std::move(r));
    }
  }
  std::vector<int64_t> costs;
  for (const Rollout& r : all) costs.push_back(trains(r, o) ? static_cast<int64_t>(r.tokens.size()) : 0);
  const auto owner = balance_ranks(costs, group.size());
  std::vector<Rollout> kept;
  for (size_t i = 0; i < all.size(); ++i)
    if (owner[i] == group.rank()) kept.push_back(std::move(all[i]));
  return kept;
}

// A micro-batch of rollouts as the shared-prefix forward takes it: each distinct prompt once
// (the G completions of a group share theirs), the completions, and per completion its tokens as
// targets with the mask of those that count.
struct MicroBatch {
  torch::Tensor prompts, prompt_lengths;  // [P, n] right-padded, [P]
  torch::Tensor completions, group;       // model input [R, max(1, m - 1)] (a last token predicts nothing), [R]
  torch::Tensor lengths;                  // [R] int64: completion tokens of each rollout (the rest is padding)
  torch::Tensor targets, mask;            // [R, m]: completion tokens; 1 where a gradient flows
  torch::Tensor advantages;               // [R] float32
  torch::Tensor sampled_logprobs;         // [R, m] float32: the engine's, 0 at padding
  torch::Tensor rows;                     // without sharing: prompt + completion rows [R, L] (right-padded)
};

// Whether a micro-batch goes through the shared-prefix forward: "auto" when its real tokens (each
// prompt once, no padding: all the shared forward computes outside attention) are at most 85% of
// the padded rows the plain forward would run. The margin pays for the shared forward's attention,
// masked rather than causal and over the padded layout (docs/grpo.md#speed).
bool share_prompts(const std::string& mode, int64_t shared_tokens, int64_t row_positions) {
  if (mode != "auto") return mode == "on";
  return static_cast<double>(shared_tokens) <= 0.85 * static_cast<double>(row_positions);
}

MicroBatch pack(const std::vector<const Rollout*>& rows, const std::string& sharing) {
  std::map<int64_t, int64_t> prompt_row;  // group id -> row of `prompts`
  std::vector<const Rollout*> firsts;
  int64_t n = 1, m = 1, L = 1, shared_tokens = 0;
  for (const auto* r : rows) {
    if (prompt_row.emplace(r->group, static_cast<int64_t>(firsts.size())).second) {
      firsts.push_back(r);
      shared_tokens += r->prompt_len;
    }
    shared_tokens += std::max<int64_t>(0, r->completion_len - 1);
    n = std::max(n, r->prompt_len);
    m = std::max(m, r->completion_len);
    L = std::max<int64_t>(L, static_cast<int64_t>(r->tokens.size()) - 1);
  }
  const int64_t P = static_cast<int64_t>(firsts.size()), R = static_cast<int64_t>(rows.size());
  MicroBatch b{torch::zeros({P, n}, torch::kInt64), torch::zeros({P}, torch::kInt64),
               torch::zeros({R, std::max<int64_t>(1, m - 1)}, torch::kInt64), torch::zeros({R}, torch::kInt64),
               torch::zeros({R}, torch::kInt64), torch::zeros({R, m}, torch::kInt64),
               torch::zeros({R, m}, torch::kFloat32), torch::zeros({R}), torch::zeros({R, m}), torch::Tensor()};
  for (int64_t p = 0; p < P; ++p) {
    std::copy_n(firsts[p]->tokens.begin(), firsts[p]->prompt_len, b.prompts[p].data_ptr<int64_t>());
    b.prompt_lengths[p] = firsts[p]->prompt_len;
  }
  for (int64_t i = 0; i < R; ++i) {
    const Rollout& r = *rows[i];
    const auto completion = r.tokens.begin() + r.prompt_len;
    std::copy_n(completion, r.completion_len, b.targets[i].data_ptr<int64_t>());
    std::copy_n(completion, std::min(r.completion_len, b.completions.size(1)), b.completions[i].data_ptr<int64_t>());
    b.group[i] = prompt_row.at(r.group);
    b.lengths[i] = r.completion_len;
    b.advantages[i] = r.advantage;
    std::copy_n(r.sampled_logprobs.begin(), std::min<int64_t>(r.completion_len, r.sampled_logprobs.size()),
                b.sampled_logprobs[i].data_ptr<float>());
    if (!r.masked) b.mask[i].narrow(0, 0, r.completion_len).fill_(1.0);
  }
  if (!share_prompts(sharing, shared_tokens, R * L)) {
    b.rows = torch::zeros({R, L}, torch::kInt64);
    for (int64_t i = 0; i < R; ++i)
      std::copy_n(rows[i]->tokens.begin(), std::min<int64_t>(L, rows[i]->tokens.size()), b.rows[i].data_ptr<int64_t>());
  }
  return b;
}

// R1_NO_CHUNKED_LOGPROBS=1: the head's logits, their log-softmax and its gradient over every
// completion token at once (the path before vocab_logprobs), for A/B measurements of memory.
bool full_vocabulary_logprobs() {
  static const bool full = std::getenv("R1_NO_CHUNKED_LOGPROBS") != nullptr;
  return full;
}

std::pair<torch::Tensor, torch::Tensor> full_logprobs(Transformer& model, const torch::Tensor& hidden,
                                                      const torch::Tensor& targets, int64_t vocab, double temperature,
                                                      bool bf16, torch::Device device) {
  torch::Tensor logits;
  {
    AutocastScope autocast(bf16, device.type());
    logits = model->logits(hidden);
  }
  const auto all = torch::log_softmax(logits.narrow(-1, 0, vocab).to(torch::kFloat32) / temperature, -1);
  const auto picked = all.gather(-1, targets.unsqueeze(-1)).squeeze(-1);
  torch::NoGradGuard no_grad;
  return {picked, -(all.exp() * all).sum(-1)};
}

// Log-probs [R, m] of each rollout's completion tokens at `temperature`, and the entropy of each
// position's distribution (for logging), through the shared-prefix forward or, when pack() chose
// whole rows, the plain one. With bf16 the model and the head's products run in bf16; the
// log-softmax stays fp32.
// The distribution is over the first `vocab` ids: the engine samples only the tokenizer's ids (a
// checkpoint's embedding may be padded past them, as Qwen2's is), so the policy being trained is
// the one that generated the rollouts, and its log-probs equal the engine's.
std::pair<torch::Tensor, torch::Tensor> completion_logprobs(Transformer& model, const MicroBatch& b, int64_t vocab,
                                                            double temperature, bool bf16, torch::Device device) {
  const int64_t R = b.targets.size(0), m = b.targets.size(1);
  const auto group = b.group.to(device), lengths = b.prompt_lengths.to(device);
  // Logits only at the completions' real tokens (a real checkpoint's vocabulary makes them the
  // largest tensor of the pass); padding gets log-prob and entropy 0, and is masked anyway.
  const auto real = (torch::arange(m, lengths.options()).unsqueeze(0) < b.lengths.to(device).unsqueeze(1))
                        .reshape({-1}).nonzero().squeeze(1);
  torch::Tensor hidden;  // [R, m, H]: the state that predicts each completion token
  {
    AutocastScope autocast(bf16, device.type());
    if (b.rows.defined()) {  // whole rows: completion token j is predicted at position prompt length - 1 + j
      const auto h = model->forward(b.rows.to(device));
      const auto at = (lengths.index_select(0, group).unsqueeze(1) - 1 + torch::arange(m, lengths.options()))
                          .clamp_max(h.size(1) - 1);  // padding targets: any position, masked
      hidden = h.gather(1, at.unsqueeze(-1).expand({-1, -1, h.size(2)}));
    } else {
      auto [hp, hc] = model->forward_shared_prefix(b.prompts.to(device), lengths, b.completions.to(device), group,
                                                   (b.lengths.to(device) - 1).clamp_min(0));
      // Completion token 0 is predicted at its prompt's last position, token j at completion position j - 1.
      const auto last = hp.index({torch::arange(hp.size(0), lengths.options()), lengths - 1});  // [P, H]
      hidden = torch::cat({last.index_select(0, group).unsqueeze(1), hc.narrow(1, 0, m - 1)}, 1);
    }
  }
  // log p and entropy at the completions' real tokens, the head applied a chunk of rows at a time
  // forward and backward (model/vocab_logprobs.h): no [tokens, vocabulary] tensor is kept.
  const auto targets = b.targets.to(device).reshape({-1}).index_select(0, real);
  const auto real_hidden = hidden.reshape({R * m, -1}).index_select(0, real);
  auto [token_logp, token_entropy] = full_vocabulary_logprobs()
      ? full_logprobs(model, real_hidden, targets, vocab, temperature, bf16, device)
      : vocab_logprobs(real_hidden, model->head_weight(), targets, vocab, temperature, bf16);
  const auto spread = [&](const torch::Tensor& t) {  // [real tokens] -> [R, m], 0 at padding
    return torch::zeros({R * m}, t.options()).index_copy(0, real, t).view({R, m});
  };
  const auto picked = spread(token_logp);
  const auto entropy = spread(token_entropy);
  return {picked, entropy};
}

// --rm-normalize: the reward model's scores in `table` (row 0 the weighted total, rows 4.. one per
// part, each [prompts, G]) become z-scores over the round's completions (after the ranks shared
// their rows, so data-parallel runs normalise over the same batch as one process), and the total
// follows.
void normalize_component(torch::Tensor& table, const std::vector<WeightedReward>& parts) {
  for (size_t k = 0; k < parts.size(); ++k) {
    if (parts[k].name != "rm") continue;
    const auto raw = table[4 + static_cast<int64_t>(k)].clone();
    const auto mean = raw.mean();
    const auto sd = (raw - mean).pow(2).mean().sqrt();  // population std, as the batch is all there is
    const auto z = (raw - mean) / (sd + 1e-6);
    table[0] += parts[k].weight * (z - raw);
    table[4 + static_cast<int64_t>(k)].copy_(z);
  }
}

}  // namespace

int64_t grpo(const GrpoOptions& o, const std::atomic<bool>* stop, const std::function<void(const GrpoStepMetrics&)>& on_step) {
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
  const torch::Device device(o.device);
  const bool bf16 = use_bf16(o.precision, device.is_cuda());
  // Data parallelism: every rank walks the same prompt order and sees every prompt's rewards, but
  // generates, scores and trains on its own share of the prompts (prompt i goes to rank i mod W,
  // and keeps its global sampling seed, so W ranks sample what one process would). Gradients are
  // summed; the loss weights are global fractions. Rank 0 alone writes logs and checkpoints.
  const LaunchEnv env = LaunchEnv::from_environment();
  const int64_t world = env.world_size, rank = env.rank;
  if (o.prompts_per_step % world != 0)
    throw Error("--prompts-per-step (" + std::to_string(o.prompts_per_step) + ") must be a multiple of the number of "
                "processes (" + std::to_string(world) + ")");
  std::unique_ptr<ProcessGroup> group;
  if (env.distributed()) group = std::make_unique<ProcessGroup>(env, device, std::chrono::seconds(o.dist_timeout_s));
  const bool main_rank = env.is_main();
  const fs::path run(o.out), state_dir = run / "trainer_state";
  const bool resuming = o.resume && fs::exists(state_dir / "state.json");
  if (!o.resume && fs::exists(run / "config.json"))
    throw Error(o.out + " already holds a model: pass --resume to continue its run, or pick a new --out");
  if (o.init.empty() && !resuming) throw Error("r1 grpo needs --init DIR (the policy to start from)");
  // Rewards; a learned one (rm:DIR) is loaded here, from the checkpoint when resuming an
  // iterative run whose reward model has been trained further.
  std::shared_ptr<RewardModelScorer> rm_scorer;
  std::shared_ptr<Tokenizer> rm_tokenizer;
  std::string rm_tokenizer_file;
  RewardOptions reward_options = o.reward_options;
  reward_options.model_reward = [&](const std::string& dir) {
    const fs::path saved = state_dir / "reward_model";
    const std::string from = resuming && fs::exists(saved / "config.json") ? saved.string() : dir;
    if (!fs::exists(fs::path(from) / "tokenizer.json")) throw Error(from + ": no tokenizer.json beside the reward model");
    if (!ModelConfig::load((fs::path(from) / "config.json").string()).sequence_classification)
      throw Error("--reward rm:" + from + ": not a reward model (train one with r1 rm train)");
    rm_tokenizer_file = (fs::path(from) / "tokenizer.json").string();
    rm_tokenizer = std::make_shared<Tokenizer>(Tokenizer::load(rm_tokenizer_file));
    rm_scorer = std::make_shared<RewardModelScorer>(load_reward_model(from, device), rm_tokenizer.get(), 1024,
                                                    o.micro_batch);
    return reward_model_reward(rm_scorer);  // --rm-normalize: over the whole step, normalize_component
  };
  const CombinedReward reward(o.reward, reward_options);
  std::unique_ptr<IterativeRewardModel> iterative;
  // "Correct" (the accuracy metric, and the labels of fresh samples for the reward model) means the
  // first rule-based reward scored 1; a reward model's score is no accuracy.
  const std::string label_reward = reward.first_rule_reward();
  if (o.rm_updates.every > 0) {
    if (!rm_scorer) throw Error("--rm-update-every needs a learned reward in --reward (rm:DIR)");
    if (label_reward.empty())
      throw Error("--rm-update-every labels fresh samples with a rule-based reward: add one to --reward "
                  "(weight 0 to only label, e.g. rm:DIR:1,accuracy_math:0)");
    RmUpdateOptions u = o.rm_updates;
    u.seed = o.seed;
    iterative = std::make_unique<IterativeRewardModel>(rm_scorer, rm_tokenizer.get(), rm_tokenizer_file, u);
    if (resuming) iterative->load(state_dir.string());
  }
  const std::string source = resuming ? o.out : o.init;
  const fs::path tokenizer_path = fs::path(source) / "tokenizer.json";
  if (!fs::exists(tokenizer_path)) throw Error(source + ": no tokenizer.json");
  const Tokenizer tokenizer = Tokenizer::load(tokenizer_path.string());
  const auto prompts = read_prompts(o.prompts, o.prompt_template, o.chat_template, tokenizer);
  fs::create_directories(run);
  if (main_rank && !o.args_toml.empty()) write_text_file((run / "args.toml").string(), o.args_toml);

  Transformer policy = load_model_dir(source, {device, torch::kFloat32});
  const int64_t sampled_vocab = std::min<int64_t>(tokenizer.vocab_size(), policy->config().vocab_size);  // the engine's
  {  // the rollout sampling options, checked before any work
    SamplingParams p;
    p.temperature = o.temperature, p.top_p = o.top_p, p.top_k = o.top_k, p.min_p = o.min_p;
    p.repetition_penalty = o.repetition_penalty;
    p.validate(policy->config().vocab_size);
  }
  Transformer reference{nullptr};
  if (o.loss.beta > 0) {
    const fs::path saved_ref = state_dir / "reference";
    reference = load_model_dir(resuming && fs::exists(saved_ref) ? saved_ref.string() : o.init, {device, torch::kFloat32});
    reference->eval();
    for (auto& p : reference->parameters()) p.set_requires_grad(false);
  }
  if (group) {  // every rank starts from rank 0's weights
    std::vector<torch::Tensor> params;
    for (auto& p : policy->parameters()) params.push_back(p.detach());
    group->broadcast(params);
  }
  // GRPO's loss does not reach the multi-token prediction modules: they stay as they are.
  policy->freeze_mtp_modules();
  torch::optim::AdamW optimizer = make_adamw(policy, o.schedule.max_lr, o.beta1, o.beta2, o.adam_eps, o.weight_decay);
  ExpertBalance balance(policy, o.balance, group.get());  // mixture-of-experts policies

  int64_t step = 0;
  uint64_t cursor = 0, epoch = 0;
  if (resuming) {
    const auto state = read_json_file((state_dir / "state.json").string());
    step = state.at("step").get<int64_t>();
    cursor = state.at("cursor").get<uint64_t>();
    epoch = state.at("epoch").get<uint64_t>();
    torch::load(optimizer, (state_dir / "optimizer.pt").string());
  }
  if (main_rank) {
    keep_jsonl_steps_up_to((run / "metrics.jsonl").string(), step);  // a resumed run redoes the later ones
    keep_jsonl_steps_up_to((run / "samples.jsonl").string(), step);
  }

  // Prompt order: a seeded shuffle per epoch; the cursor is part of the checkpoint.
  std::vector<size_t> order(prompts.size());
  auto shuffle = [&] {
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(splitmix64(o.seed * 7919 + epoch));
    std::shuffle(order.begin(), order.end(), rng);
  };
  shuffle();
  auto next_prompt = [&] {
    if (cursor == order.size()) {
      cursor = 0;
      ++epoch;
      shuffle();
    }
    return order[cursor++];
  };

  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.ids.size());
  EngineOptions engine_options;
  engine_options.max_batch = o.prompts_per_step / world * o.group_size;
  engine_options.max_context = static_cast<int64_t>(longest) + o.max_completion_tokens;
  Engine engine(policy, &tokenizer, engine_options);
  const HeldoutEval heldout(o.heldout, o.prompt_template, tokenizer,
                            chat_prompt_format(o.prompt_template, o.chat_template, tokenizer), reward_options);
  auto evaluate_heldout = [&](int64_t done) {
    if (!heldout.due(done, o.steps)) return;
    const HeldoutResult h = heldout.run(policy, group.get());
    if (!main_rank) return;
    std::fprintf(stderr, "held-out after step %lld: accuracy %.3f (answered %.3f, boxed %.3f), %.0f tokens, %.0f s\n",
                 static_cast<long long>(done), h.accuracy, h.answer_rate, h.boxed_rate, h.response_tokens, h.seconds);
    std::ofstream(run / "metrics.jsonl", std::ios::app) << h.to_json(done).dump() << "\n";
  };

  auto save = [&](int64_t done) {
    SaveOptions s;
    s.write_extra = [&](const std::string& dir) {
      const fs::path st = fs::path(dir) / "trainer_state";
      fs::create_directories(st);
      torch::save(optimizer, (st / "optimizer.pt").string());
      write_text_file((st / "state.json").string(),
                      json{{"step", done}, {"cursor", cursor}, {"epoch", epoch}, {"seed", o.seed}}.dump(2) + "\n");
      if (reference) save_model_dir(reference, (st / "reference").string());
      if (iterative) iterative->save(st.string());
      copy_tokenizer_files(tokenizer_path.string(), dir);  // with the chat template
    };
    save_model_dir(policy, o.out, s);
  };

  const std::string first_reward = label_reward.empty() ? reward.parts()[0].name : label_reward;
  if (step == 0) evaluate_heldout(0);
  while (step < o.steps) {
    const auto t0 = Clock::now();
    const double lr = o.schedule.at(step);
    for (auto& g : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);

    // 1. Rollouts: P prompts x G completions (more rounds with dynamic sampling).
    std::vector<Rollout> rollouts;
    std::vector<json> sample_log;
    double gen_s = 0, reward_s = 0, reward_sum = 0, reward_sq = 0, correct = 0, length_sum = 0, truncated = 0;
    double min_len = 1e18, max_len = 0, generated = 0;
    std::map<std::string, double> component_sums;
    int64_t groups_seen = 0, zero_variance = 0, kept_groups = 0;
    for (int64_t round = 0; round <= (o.drop_zero_variance_groups ? o.max_resample_rounds : 0); ++round) {
      const int64_t need = o.prompts_per_step - kept_groups;
      if (need <= 0) break;
      std::vector<size_t> chosen;  // this round's prompts, the same on every rank
      for (int64_t i = 0; i < need; ++i) chosen.push_back(next_prompt());
      std::vector<int64_t> mine;  // indices into chosen that this rank generates, scores and trains on
      std::vector<Request> requests;
      for (int64_t i = rank; i < need; i += world) {
        mine.push_back(i);
        Request r;
        r.prompt = prompts[chosen[i]].ids;
        r.n = static_cast<int>(o.group_size);
        r.params.temperature = o.temperature;
        r.params.top_p = o.top_p;
        r.params.top_k = o.top_k;
        r.params.min_p = o.min_p;
        r.params.repetition_penalty = o.repetition_penalty;
        r.params.max_new_tokens = o.max_completion_tokens;
        r.params.seed = splitmix64(splitmix64(o.seed) ^ splitmix64(static_cast<uint64_t>(step) * 1000003 + round * 10007 + i));
        requests.push_back(std::move(r));
      }
      auto g0 = Clock::now();
      const auto generations = engine.generate(requests);
      gen_s += since(g0);
      g0 = Clock::now();
      std::vector<RewardInput> inputs;
      for (size_t j = 0; j < mine.size(); ++j)
        for (const auto& c : generations[j]) {
          json meta = prompts[chosen[mine[j]]].metadata;
          meta["completion_tokens"] = c.ids.size();
          inputs.push_back({prompts[chosen[mine[j]]].text, c.text, meta});
        }
      const auto scored = reward.score_batch(inputs, o.reward_threads);
      reward_s += since(g0);
      // What every completion of the round scored, on every rank: [total, correct, length, truncated,
      // one row per reward component] x prompts x G. Ranks fill their own prompts; a sum shares them.
      const auto& parts = reward.parts();
      const int64_t rows = 4 + static_cast<int64_t>(parts.size());
      auto table = torch::zeros({rows, need, o.group_size}, torch::kFloat64);
      auto t = table.accessor<double, 3>();
      for (size_t j = 0; j < mine.size(); ++j)
        for (int64_t g = 0; g < o.group_size; ++g) {
          const Completion& c = generations[j][g];
          const ScoredCompletion& s = scored[j * o.group_size + g];
          const int64_t i = mine[j];
          t[0][i][g] = s.total;
          t[1][i][g] = s.components.at(first_reward).score >= 1 - 1e-9;
          t[2][i][g] = static_cast<double>(c.ids.size());
          t[3][i][g] = c.finish_reason == "length";
          for (size_t k = 0; k < parts.size(); ++k) t[4 + k][i][g] = s.components.at(parts[k].name).score;
        }
      if (group) {
        auto shared = table.to(device);
        group->all_reduce_sum({shared});
        table = shared.cpu();
        t = table.accessor<double, 3>();
      }
      if (o.rm_normalize) normalize_component(table, reward.parts());
      const auto advantage_tensor = group_advantages(table[0], o.scale_rewards);
      const auto advantages = advantage_tensor.accessor<double, 2>();
      std::vector<bool> keep(need);
      for (int64_t i = 0; i < need; ++i) {
        ++groups_seen;
        double lo = t[0][i][0], hi = lo;
        for (int64_t g = 0; g < o.group_size; ++g) {
          lo = std::min(lo, t[0][i][g]);
          hi = std::max(hi, t[0][i][g]);
          // Statistics over every sampled completion.
          reward_sum += t[0][i][g];
          reward_sq += t[0][i][g] * t[0][i][g];
          correct += t[1][i][g];
          length_sum += t[2][i][g];
          min_len = std::min(min_len, t[2][i][g]);
          max_len = std::max(max_len, t[2][i][g]);
          truncated += t[3][i][g];
          generated += t[2][i][g];
          for (size_t k = 0; k < parts.size(); ++k) component_sums[parts[k].name] += t[4 + k][i][g];
        }
        const bool flat = lo == hi;
        zero_variance += flat;
        keep[i] = !(o.drop_zero_variance_groups && flat) && kept_groups < o.prompts_per_step;
        kept_groups += keep[i];
      }
      for (size_t j = 0; j < mine.size() && iterative; ++j) {  // fresh samples for the reward model
        std::vector<std::string> texts;
        std::vector<bool> right;
        for (int64_t g = 0; g < o.group_size; ++g) {
          texts.push_back(generations[j][g].text);
          right.push_back(scored[j * o.group_size + g].components.at(label_reward).score >= 1 - 1e-9);
        }
        iterative->collect(round * o.prompts_per_step + mine[j], prompts[chosen[mine[j]]].text, texts, right);
      }
      for (size_t j = 0; j < mine.size(); ++j) {
        const int64_t i = mine[j];
        for (int64_t g = 0; g < o.group_size; ++g) {
          const Completion& c = generations[j][g];
          if (sample_log.size() < static_cast<size_t>(o.samples_per_log))
            sample_log.push_back({{"step", step + 1}, {"prompt", prompts[chosen[i]].text}, {"completion", c.text},
                                  {"reward", t[0][i][g]}, {"advantage", advantages[i][g]}});
          if (!keep[i]) continue;
          Rollout r;
          r.tokens = prompts[chosen[i]].ids;
          r.prompt_len = static_cast<int64_t>(r.tokens.size());
          r.tokens.insert(r.tokens.end(), c.ids.begin(), c.ids.end());
          r.completion_len = static_cast<int64_t>(c.ids.size());
          r.sampled_logprobs = c.logprobs;
          r.advantage = advantages[i][g];
          r.group = round * o.prompts_per_step + i;
          r.masked = o.mask_truncated && c.finish_reason == "length";
          rollouts.push_back(std::move(r));
        }
      }
    }

    if (iterative && group) iterative->share_fresh(*group);

    // 2. Optimisation: mu passes, one AdamW step each, over micro-batches.
    const auto t1 = Clock::now();
    if (group && o.rank_balance == "tokens") rollouts = deal_rollouts(rollouts, *group, o);
    policy->train();
    const int64_t local_n = static_cast<int64_t>(rollouts.size());
    double total_tokens = 0;  // completion tokens with a gradient, over all ranks
    for (const auto& r : rollouts) total_tokens += r.masked ? 0 : r.completion_len;
    int64_t N = local_n;  // rollouts over all ranks
    if (group) {
      auto counts = torch::tensor({static_cast<double>(local_n), total_tokens}, torch::kFloat64).to(device);
      group->all_reduce_sum({counts});
      N = static_cast<int64_t>(counts[0].item<double>());
      total_tokens = counts[1].item<double>();
    }
    // Only rollouts that can move the weights get a forward and backward (trains()).
    std::vector<int64_t> by_length;
    for (int64_t i = 0; i < local_n; ++i)
      if (trains(rollouts[i], o)) by_length.push_back(i);
    const int64_t trained_n = static_cast<int64_t>(by_length.size());
    // Micro-batches are runs of the rollouts in order of length, so each pads to rows of similar
    // length instead of the step's longest (bare and reasoning answers differ 4x in length), and
    // --micro-batch bounds a micro-batch's padded tokens (that many rows of the longest rollout)
    // rather than its rows: the short rollouts go through in fewer, fuller forwards instead of a
    // few of them padded to a long one's length. Each rollout's loss term and weight do not depend
    // on which micro-batch it lands in.
    std::stable_sort(by_length.begin(), by_length.end(),
                     [&](int64_t a, int64_t b) { return rollouts[a].tokens.size() < rollouts[b].tokens.size(); });
    const auto length = [&](int64_t i) { return static_cast<int64_t>(rollouts[by_length[i]].tokens.size()); };
    std::vector<int64_t> starts;  // micro-batch k is by_length[starts[k] .. starts[k + 1])
    for (int64_t s = 0; s < trained_n;) {
      starts.push_back(s);
      int64_t e = s + 1;
      while (e < trained_n && (e - s + 1) * length(e) <= o.micro_batch * length(trained_n - 1)) ++e;
      s = e;
    }
    starts.push_back(trained_n);
    const int64_t micro_batches = static_cast<int64_t>(starts.size()) - 1;
    std::vector<MicroBatch> batches;  // packed once, for every pass
    for (int64_t k = 0; k < micro_batches; ++k) {
      std::vector<const Rollout*> rows;
      for (int64_t i = starts[k]; i < starts[k + 1]; ++i) rows.push_back(&rollouts[by_length[i]]);
      batches.push_back(pack(rows, o.prompt_sharing));
    }
    std::vector<torch::Tensor> old_logp;  // per micro-batch, for mu > 1
    if (o.mu > 1) {
      torch::NoGradGuard no_grad;
      for (const auto& batch : batches)
        old_logp.push_back(completion_logprobs(policy, batch, sampled_vocab, o.temperature, bf16, device).first.detach());
    }
    double kl_sum = 0, clip_low = 0, clip_high = 0, entropy_sum = 0, entropy_tokens = 0, grad_norm = 0, loss_sum = 0;
    double mismatch_sum = 0;  // |training log-prob - engine log-prob| over trained tokens, first pass
    double rollout_weight_sum = 0;  // --rollout-correction's weights over the same tokens
    double off_policy_masked = 0;   // rollouts the off-policy mask dropped, first pass
    GrpoLossOptions loss_options = o.loss;
    loss_options.max_completion_length = o.max_completion_tokens;
    nlohmann::json balance_metrics;
    for (int64_t pass = 0; pass < o.mu && N > 0; ++pass) {
      optimizer.zero_grad();
      balance.begin_step();
      for (int64_t k = 0; k < micro_batches; ++k) {
        const MicroBatch& batch = batches[k];
        const auto mask = batch.mask.to(device);
        auto [logp, entropy] = completion_logprobs(policy, batch, sampled_vocab, o.temperature, bf16, device);
        torch::Tensor ref;
        if (reference) {
          torch::NoGradGuard no_grad;
          ref = completion_logprobs(reference, batch, sampled_vocab, o.temperature, bf16, device).first;
        }
        const auto old = o.mu > 1 ? old_logp[k] : logp.detach();
        const auto sampled = batch.sampled_logprobs.to(device);
        const auto rollout_weight = rollout_correction(old, sampled, mask, loss_options);
        const auto terms =
            grpo_loss(logp, old, ref, batch.advantages.to(device), mask, loss_options, rollout_weight, sampled);
        // Weight the micro-batch so the sum over micro-batches is the loss of the whole batch.
        const double micro_tokens = batch.mask.sum().item<double>();
        const double b = static_cast<double>(batch.targets.size(0));
        const double weight = o.loss.loss_agg == "token-mean" ? micro_tokens / std::max(total_tokens, 1.0) : b / N;
        auto weighted = terms.loss * weight;
        if (balance.active()) weighted = weighted + balance.take_loss().to(device) * weight;
        weighted.backward();
        loss_sum += terms.loss.item<double>() * weight;
        if (pass == 0) {
          kl_sum += terms.kl * micro_tokens;
          clip_low += terms.clip_low * micro_tokens;
          clip_high += terms.clip_high * micro_tokens;
          entropy_sum += (entropy * mask).sum().item<double>();
          entropy_tokens += micro_tokens;
          mismatch_sum += ((old - sampled).abs() * mask).sum().item<double>();
          if (rollout_weight.defined()) rollout_weight_sum += (rollout_weight * mask).sum().item<double>();
          off_policy_masked += terms.off_policy_masked * b;
        }
      }
      // Nothing trained here (no rollouts on this rank, or all skipped): the gradient is 0, and AdamW
      // still takes its step (momentum, weight decay) as it would after a backward of zeros.
      for (auto& p : policy->trainable_parameters())
        if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      if (group) {
        std::vector<torch::Tensor> grads;
        for (auto& p : policy->trainable_parameters()) grads.push_back(p.grad());
        group->all_reduce_sum(grads);
      }
      grad_norm = torch::nn::utils::clip_grad_norm_(policy->trainable_parameters(), o.clip);
      optimizer.step();
      balance_metrics = balance.after_step();
    }
    bool stopping = stop && stop->load();
    double trained_all = static_cast<double>(trained_n);  // rollouts trained on, over all ranks
    double rank_imbalance = 1;  // the busiest rank's trained tokens over the ranks' mean
    if (group) {  // the training statistics, and whether any rank was asked to stop (all stop at one step)
      double trained_tokens = 0;
      for (int64_t i : by_length) trained_tokens += static_cast<double>(rollouts[i].tokens.size());
      std::vector<double> stats = {loss_sum, kl_sum, clip_low, clip_high, entropy_sum, stopping ? 1.0 : 0.0,
                                   entropy_tokens, static_cast<double>(trained_n), mismatch_sum, rollout_weight_sum,
                                   off_policy_masked};
      const int64_t rank_slots = static_cast<int64_t>(stats.size());  // then each rank's trained tokens, in its own slot
      stats.resize(stats.size() + group->size(), 0.0);
      stats[rank_slots + group->rank()] = trained_tokens;
      auto shared = torch::tensor(stats, torch::kFloat64).to(device);
      group->all_reduce_sum({shared});
      shared = shared.cpu();
      loss_sum = shared[0].item<double>();
      kl_sum = shared[1].item<double>();
      clip_low = shared[2].item<double>();
      clip_high = shared[3].item<double>();
      entropy_sum = shared[4].item<double>();
      stopping = shared[5].item<double>() > 0;
      entropy_tokens = shared[6].item<double>();
      trained_all = shared[7].item<double>();
      mismatch_sum = shared[8].item<double>();
      rollout_weight_sum = shared[9].item<double>();
      off_policy_masked = shared[10].item<double>();
      const auto per_rank = shared.narrow(0, rank_slots, group->size());
      const double mean_tokens = per_rank.mean().item<double>();
      rank_imbalance = mean_tokens > 0 ? per_rank.max().item<double>() / mean_tokens : 1.0;
    }
    ++step;
    std::optional<RmUpdateStats> rm_update;
    if (iterative && step % o.rm_updates.every == 0) {
      rm_update = iterative->update(step);  // every rank: the same pairs, the same draws
      if (group) {  // keep the replicas bit-identical whatever the kernels' rounding
        std::vector<torch::Tensor> rm_params;
        for (auto& p : rm_scorer->model()->parameters()) rm_params.push_back(p.detach());
        group->broadcast(rm_params);
      }
    }
    const bool reset_reference = (o.ref_reset_every > 0 && step % o.ref_reset_every == 0) || rm_update;
    if (reference && reset_reference) {
      torch::NoGradGuard no_grad;
      auto src = policy->named_parameters();
      for (auto& p : reference->named_parameters()) p.value().copy_(src[p.key()]);
    }
    const double train_s = since(t1), seconds = since(t0);
    const double samples = std::max(1.0, static_cast<double>(groups_seen * o.group_size));
    const double tokens = std::max(total_tokens, 1.0);
    GrpoStepMetrics m;
    m.step = step;
    m.reward = reward_sum / samples;
    m.accuracy = correct / samples;
    m.completion_length = length_sum / samples;
    m.kl = kl_sum / tokens;
    m.lr = lr;
    m.seconds = seconds;
    if (!main_rank) {
      evaluate_heldout(step);
      if (stopping) break;
      continue;
    }
    if (step % o.log_every == 0 || step == o.steps) {
      json line = {{"stage", "grpo"}, {"step", step}, {"loss", loss_sum / o.mu}, {"reward", m.reward},
                   {"reward_std", std::sqrt(std::max(0.0, reward_sq / samples - m.reward * m.reward))},
                   {"accuracy", m.accuracy}, {"zero_variance_groups", static_cast<double>(zero_variance) / groups_seen},
                   {"completion_length", m.completion_length}, {"completion_length_min", min_len},
                   {"completion_length_max", max_len}, {"truncation_rate", truncated / samples}, {"kl", m.kl},
                   // entropy: over the tokens trained on (null when every rollout was skipped)
                   {"entropy", entropy_tokens > 0 ? json(entropy_sum / entropy_tokens) : json(nullptr)},
                   {"rollouts_trained", trained_all / std::max<double>(N, 1)},
                   {"rank_imbalance", rank_imbalance},
                   {"rollout_logprob_diff", entropy_tokens > 0 ? json(mismatch_sum / entropy_tokens) : json(nullptr)},
                   {"rollout_weight", o.loss.rollout_correction != "none" && entropy_tokens > 0
                                          ? json(rollout_weight_sum / entropy_tokens) : json(nullptr)},
                   {"off_policy_masked", o.loss.off_policy_mask > 0 && trained_all > 0
                                             ? json(off_policy_masked / trained_all) : json(nullptr)},
                   {"clip_low", clip_low / tokens}, {"clip_high", clip_high / tokens},
                   {"grad_norm", grad_norm}, {"lr", lr}, {"generation_s", gen_s}, {"reward_s", reward_s},
                   {"train_s", train_s}, {"step_s", seconds}, {"tokens_per_s", generated / seconds}};
      for (const auto& [name, sum] : component_sums) line["reward_" + name] = sum / samples;
      if (component_sums.count("format_think")) line["format_rate"] = component_sums["format_think"] / samples;
      if (rm_update) {
        line["rm_update_pairs"] = rm_update->fresh_pairs;
        line["rm_update_replay"] = rm_update->replay_pairs;
        line["rm_update_loss"] = rm_update->loss;
        line["rm_update_accuracy"] = rm_update->accuracy;
      }
      if (balance_metrics.is_object()) line.update(balance_metrics);
      std::ofstream(run / "metrics.jsonl", std::ios::app) << line.dump() << "\n";
    }
    if (o.sample_every > 0 && (step % o.sample_every == 0 || step == o.steps || step == 1)) {
      std::ofstream out(run / "samples.jsonl", std::ios::app);
      for (auto& s : sample_log) out << s.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    }
    evaluate_heldout(step);
    if (on_step) on_step(m);
    if (step == o.steps || stopping || (o.save_every > 0 && step % o.save_every == 0)) save(step);
    if (stopping) break;
  }
  return step;
}

}  // namespace r1
