#include "rl/grpo_train.h"

#include <algorithm>
#include <map>

#include "model/vocab_logprobs.h"
#include "rl/grpo_loss.h"
#include "rl/grpo_rollouts.h"
#include "train/autocast.h"

namespace r1 {
namespace {

// A micro-batch of rollouts as the shared-prefix forward takes it: each distinct prompt once
// (the G completions of a group share theirs), the completions, and per completion its tokens as
// targets with the mask of those that count.
struct MicroBatch {
  torch::Tensor prompts, prompt_lengths;  // [P, n] right-padded, [P]
  torch::Tensor completions, group;       // model input [R, max(1, m - 1)] (a last token predicts nothing), [R]
  torch::Tensor lengths;                  // [R] int64 on the host: completion tokens of each rollout (the rest is padding)
  torch::Tensor targets, mask;            // [R, m]: completion tokens; 1 where a gradient flows
  torch::Tensor advantages;               // [R] float32
  torch::Tensor sampled_logprobs;         // [R, m] float32: the engine's, 0 at padding
  torch::Tensor rows;                     // without sharing: prompt + completion rows [R, L] (right-padded)
  torch::Tensor real;                     // [real tokens] int64: where in [R * m] the completions' tokens are
  // On the host: the lengths as the shared-prefix forward takes them (it lays out the tokens
  // there), and the mask's sum.
  torch::Tensor host_prompt_lengths, host_inputs;  // [P], [R]: completion tokens that are inputs (length - 1)
  double tokens = 0;

  // Everything the forward and the loss read, copied to `device` once per step (the micro-batch
  // loop then copies nothing and waits for nothing).
  void to(torch::Device device) {
    for (torch::Tensor* t : {&prompts, &prompt_lengths, &completions, &group, &targets, &mask, &advantages,
                             &sampled_logprobs, &rows, &real})
      if (t->defined()) *t = t->to(device, /*non_blocking=*/true);
  }
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
    if (!r.masked) {
      b.mask[i].narrow(0, 0, r.completion_len).fill_(1.0);
      b.tokens += static_cast<double>(r.completion_len);
    }
  }
  b.real = (torch::arange(m).unsqueeze(0) < b.lengths.unsqueeze(1)).reshape({-1}).nonzero().squeeze(1);
  b.host_prompt_lengths = b.prompt_lengths.clone();
  b.host_inputs = (b.lengths - 1).clamp_min(0);
  if (!share_prompts(sharing, shared_tokens, R * L)) {
    b.rows = torch::zeros({R, L}, torch::kInt64);
    for (int64_t i = 0; i < R; ++i)
      std::copy_n(rows[i]->tokens.begin(), std::min<int64_t>(L, rows[i]->tokens.size()), b.rows[i].data_ptr<int64_t>());
  }
  return b;
}

// R1_NO_CHUNKED_LOGPROBS=1: the head's logits, their log-softmax and its gradient over every
// completion token at once (the path before vocab_logprobs), for A/B measurements of memory.
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
  const auto& group = b.group;
  const auto& lengths = b.prompt_lengths;
  torch::Tensor hidden;  // [R, m, H]: the state that predicts each completion token
  {
    AutocastScope autocast(bf16, device.type());
    if (b.rows.defined()) {  // whole rows: completion token j is predicted at position prompt length - 1 + j
      const auto h = model->forward(b.rows);
      const auto at = (lengths.index_select(0, group).unsqueeze(1) - 1 + torch::arange(m, lengths.options()))
                          .clamp_max(h.size(1) - 1);  // padding targets: any position, masked
      hidden = h.gather(1, at.unsqueeze(-1).expand({-1, -1, h.size(2)}));
    } else {
      auto [hp, hc] = model->forward_shared_prefix(b.prompts, b.host_prompt_lengths, b.completions, group,
                                                   b.host_inputs);
      // Completion token 0 is predicted at its prompt's last position, token j at completion position j - 1.
      const auto last = hp.index({torch::arange(hp.size(0), lengths.options()), lengths - 1});  // [P, H]
      hidden = torch::cat({last.index_select(0, group).unsqueeze(1), hc.narrow(1, 0, m - 1)}, 1);
    }
  }
  // log p and entropy at the completions' real tokens only (a real checkpoint's vocabulary makes
  // the logits the largest tensor of the pass; padding gets log-prob and entropy 0, and is masked
  // anyway), the head applied a chunk of rows at a time forward and backward
  // (model/vocab_logprobs.h): no [tokens, vocabulary] tensor is kept.
  const auto targets = b.targets.reshape({-1}).index_select(0, b.real);
  const auto real_hidden = hidden.reshape({R * m, -1}).index_select(0, b.real);
  auto [token_logp, token_entropy] = chunked_logprobs_enabled()
      ? vocab_logprobs(real_hidden, model->head_weight(), targets, vocab, temperature, bf16)
      : full_logprobs(model, real_hidden, targets, vocab, temperature, bf16, device);
  const auto spread = [&](const torch::Tensor& t) {  // [real tokens] -> [R, m], 0 at padding
    return torch::zeros({R * m}, t.options()).index_copy(0, b.real, t).view({R, m});
  };
  return {spread(token_logp), spread(token_entropy)};
}

// The rollouts that train (trains()), in micro-batches. Micro-batches are runs of the rollouts in
// order of length, so each pads to rows of similar length instead of the step's longest (bare and
// reasoning answers differ 4x in length), and --micro-batch bounds a micro-batch's padded tokens
// (that many rows of the longest rollout) rather than its rows: the short rollouts go through in
// fewer, fuller forwards instead of a few of them padded to a long one's length. Each rollout's
// loss term and weight do not depend on which micro-batch it lands in.
std::vector<MicroBatch> plan_micro_batches(const std::vector<Rollout>& rollouts, const GrpoOptions& o,
                                          torch::Device device) {
  std::vector<const Rollout*> trained;
  for (const Rollout& r : rollouts)
    if (trains(r, o)) trained.push_back(&r);
  std::stable_sort(trained.begin(), trained.end(),
                   [](const Rollout* a, const Rollout* b) { return a->tokens.size() < b->tokens.size(); });
  const int64_t n = static_cast<int64_t>(trained.size());
  const auto length = [&](int64_t i) { return static_cast<int64_t>(trained[i]->tokens.size()); };
  std::vector<MicroBatch> batches;
  for (int64_t s = 0; s < n;) {
    int64_t e = s + 1;
    while (e < n && (e - s + 1) * length(e) <= o.micro_batch * length(n - 1)) ++e;
    batches.push_back(pack({trained.begin() + s, trained.begin() + e}, o.prompt_sharing));
    batches.back().to(device);
    s = e;
  }
  return batches;
}

// The step's statistics while it trains: one float64 slot each, on the training device, so the
// micro-batch loop adds to them without waiting for the device; read once per step.
enum Stat : int64_t {
  kLoss, kKl, kClipLow, kClipHigh, kEntropy, kScoredTokens, kLogprobDiff, kRolloutWeight, kOffPolicyMasked,
  kTrainedRollouts, kStopRequested, kStats
};

struct StatSums {
  torch::Tensor slots;  // [kStats]
  void add(Stat s, const torch::Tensor& x) { slots.select(0, s).add_(x.detach().to(torch::kFloat64).sum()); }
  void add(Stat s, double x) { slots.select(0, s).add_(x); }
};

// Normalisers of the loss: rollouts and gradient-carrying completion tokens over all ranks.
std::pair<double, double> global_counts(GrpoRun& run, const std::vector<Rollout>& rollouts) {
  double n = static_cast<double>(rollouts.size()), tokens = 0;
  for (const auto& r : rollouts) tokens += r.masked ? 0 : static_cast<double>(r.completion_len);
  if (!run.group) return {n, tokens};
  auto counts = torch::tensor({n, tokens}, torch::kFloat64).to(run.device);
  run.group->all_reduce_sum({counts});
  counts = counts.cpu();
  return {counts[0].item<double>(), counts[1].item<double>()};
}

// The policy's log-probs of every micro-batch before the first update (mu > 1: the ratio's
// denominator in every pass).
std::vector<torch::Tensor> old_logprobs(GrpoRun& run, const std::vector<MicroBatch>& batches) {
  std::vector<torch::Tensor> old;
  if (run.o.mu == 1) return old;
  torch::NoGradGuard no_grad;
  for (const auto& batch : batches)
    old.push_back(
        completion_logprobs(run.policy, batch, run.sampled_vocab, run.o.temperature, run.bf16, run.device).first.detach());
  return old;
}

// One optimisation pass: the loss of every micro-batch, weighted so that their sum is the loss of
// the whole batch, backward; then the gradients summed over ranks, clipped, and one AdamW step.
// Returns the gradient norm before clipping.
double train_pass(GrpoRun& run, const std::vector<MicroBatch>& batches, size_t micro_steps,
                  const std::vector<torch::Tensor>& old_logp, int64_t pass, double N, double total_tokens,
                  StatSums& sums) {
  const GrpoOptions& o = run.o;
  GrpoLossOptions loss_options = o.loss;
  loss_options.max_completion_length = o.max_completion_tokens;
  run.optimizer->zero_grad();
  run.balance->begin_step();
  for (size_t k = 0; k < micro_steps; ++k) {
    if (k >= batches.size()) {  // --zero 2|3: another rank has more micro-batches
      run.optimizer->skip_micro_batch();
      continue;
    }
    const MicroBatch& batch = batches[k];
    const auto& mask = batch.mask;
    auto [logp, entropy] = completion_logprobs(run.policy, batch, run.sampled_vocab, o.temperature, run.bf16, run.device);
    torch::Tensor ref;
    if (run.reference) {
      torch::NoGradGuard no_grad;
      ref = completion_logprobs(run.reference, batch, run.sampled_vocab, o.temperature, run.bf16, run.device).first;
    } else if (o.loss.beta > 0) {  // LoRA: the reference is the base, the policy without its adapters
      torch::NoGradGuard no_grad;
      LoraDisabled base(run.policy);
      ref = completion_logprobs(run.policy, batch, run.sampled_vocab, o.temperature, run.bf16, run.device).first;
    }
    const auto old = o.mu > 1 ? old_logp[k] : logp.detach();
    const auto& sampled = batch.sampled_logprobs;
    const auto rollout_weight = rollout_correction(old, sampled, mask, loss_options);
    const auto terms =
        grpo_loss(logp, old, ref, batch.advantages, mask, loss_options, rollout_weight, sampled);
    const double rows = static_cast<double>(batch.targets.size(0));
    const double weight = o.loss.loss_agg == "token-mean" ? batch.tokens / std::max(total_tokens, 1.0) : rows / N;
    auto weighted = terms.loss * weight;
    if (run.balance->active()) weighted = weighted + run.balance->take_loss().to(run.device) * weight;
    weighted.backward();
    run.optimizer->after_backward();
    sums.add(kLoss, terms.loss * weight);
    if (pass > 0) continue;
    sums.add(kKl, terms.kl * batch.tokens);
    sums.add(kClipLow, terms.clip_low * batch.tokens);
    sums.add(kClipHigh, terms.clip_high * batch.tokens);
    sums.add(kEntropy, entropy * mask);
    sums.add(kScoredTokens, batch.tokens);
    sums.add(kLogprobDiff, (old - sampled).abs() * mask);
    if (rollout_weight.defined()) sums.add(kRolloutWeight, rollout_weight * mask);
    sums.add(kOffPolicyMasked, terms.off_policy_masked * rows);
  }
  // Nothing trained here (no rollouts on this rank, or all skipped): the gradient is 0, and AdamW
  // still takes its step (momentum, weight decay) as it would after a backward of zeros.
  return run.optimizer->step(o.clip);
}

// --zero 2|3: every rank runs as many micro-batches as the rank with the most (the others idle
// through the collectives of the ones they lack).
size_t micro_steps(GrpoRun& run, size_t mine) {
  if (!run.group || !run.optimizer->needs_equal_micro_batches()) return mine;
  auto counts = torch::zeros({run.group->size()}, torch::kFloat64);
  counts[run.group->rank()] = static_cast<double>(mine);
  counts = counts.to(run.device);
  run.group->all_reduce_sum({counts});
  return static_cast<size_t>(counts.max().item<double>());
}

// The sums of every rank, and each rank's trained tokens in a slot of its own (for the imbalance),
// in one all-reduce; the one read of the step's statistics from the device.
TrainStats reduce_stats(GrpoRun& run, const StatSums& sums, double trained_tokens) {
  const int64_t world = run.group ? run.group->size() : 1;
  auto per_rank = torch::zeros({world}, torch::kFloat64);
  per_rank[run.group ? run.group->rank() : 0] = trained_tokens;
  auto shared = torch::cat({sums.slots, per_rank.to(run.device)});
  if (run.group) run.group->all_reduce_sum({shared});
  shared = shared.cpu();
  const double* v = shared.data_ptr<double>();
  TrainStats s;
  s.loss = v[kLoss], s.kl = v[kKl], s.clip_low = v[kClipLow], s.clip_high = v[kClipHigh];
  s.entropy = v[kEntropy], s.scored_tokens = v[kScoredTokens], s.logprob_diff = v[kLogprobDiff];
  s.rollout_weight = v[kRolloutWeight], s.off_policy_masked = v[kOffPolicyMasked];
  s.trained_rollouts = v[kTrainedRollouts], s.stop = v[kStopRequested] > 0;
  const auto tokens = shared.narrow(0, kStats, world);
  const double mean_tokens = tokens.mean().item<double>();
  if (run.group && mean_tokens > 0) s.rank_imbalance = tokens.max().item<double>() / mean_tokens;
  return s;
}

}  // namespace

TrainStats train_on_rollouts(GrpoRun& run, std::vector<Rollout> rollouts, bool stop_requested) {
  const GrpoOptions& o = run.o;
  if (run.group && o.rank_balance == "tokens") rollouts = deal_rollouts(rollouts, *run.group, o);
  run.policy->train();
  const auto [N, total_tokens] = global_counts(run, rollouts);
  const std::vector<MicroBatch> batches = plan_micro_batches(rollouts, o, run.device);  // packed once, for every pass
  const size_t steps = micro_steps(run, batches.size());
  std::vector<torch::Tensor> old_logp;
  if (o.mu > 1) {  // --zero 3: this rank's forwards alone, with every weight whole
    const auto whole = run.optimizer->whole_weights();
    old_logp = old_logprobs(run, batches);
  }
  StatSums sums{torch::zeros({kStats}, torch::TensorOptions(torch::kFloat64).device(run.device))};
  double grad_norm = 0, trained_tokens = 0;  // this rank's, for the imbalance
  nlohmann::json balance_metrics;
  for (int64_t pass = 0; pass < o.mu && N > 0; ++pass) {
    grad_norm = train_pass(run, batches, steps, old_logp, pass, N, total_tokens, sums);
    balance_metrics = run.balance->after_step();
  }
  double trained_rollouts = 0;
  for (const Rollout& r : rollouts)
    if (trains(r, o)) {
      trained_rollouts += 1;
      trained_tokens += static_cast<double>(r.tokens.size());
    }
  sums.add(kTrainedRollouts, trained_rollouts);
  sums.add(kStopRequested, stop_requested ? 1.0 : 0.0);
  run.optimizer->zero_grad();  // the gradients are not kept through the next step's rollouts
  TrainStats stats = reduce_stats(run, sums, trained_tokens);
  stats.rollouts = N;
  stats.tokens = total_tokens;
  stats.grad_norm = grad_norm;
  stats.balance = balance_metrics;
  return stats;
}

}  // namespace r1
