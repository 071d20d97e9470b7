#include "infer/generate.h"

#include <algorithm>

#include "util/error.h"

namespace r1 {

std::vector<Generation> generate(Transformer& model, const std::vector<std::vector<int64_t>>& prompts,
                                 const GenerateOptions& options) {
  torch::InferenceMode inference;
  const int64_t B = static_cast<int64_t>(prompts.size());
  if (B == 0) return {};
  const ModelConfig& config = model->config();
  int64_t longest = 0;
  for (const auto& p : prompts) {
    if (p.empty()) throw Error("generate: empty prompt (give at least one token, e.g. BOS)");
    for (int64_t id : p)
      if (id < 0 || id >= config.vocab_size)
        throw Error("generate: token id " + std::to_string(id) + " is outside the vocabulary (" +
                    std::to_string(config.vocab_size) + ")");
    longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
  }
  const std::vector<int64_t> stop = options.stop_ids.empty() ? config.eos_token_ids : options.stop_ids;
  auto device = model->model->embed_tokens->weight.device();
  KvCache cache = model->make_cache(B, longest + options.max_new_tokens);

  // Prefill: right-padded; padding writes cache rows that decoding overwrites before reading.
  auto tokens = torch::zeros({B, longest}, torch::kInt64);
  std::vector<int64_t> length(B);
  for (int64_t b = 0; b < B; ++b) {
    length[b] = static_cast<int64_t>(prompts[b].size());
    std::copy(prompts[b].begin(), prompts[b].end(), tokens[b].data_ptr<int64_t>());
  }
  auto hidden = model->forward_cached(tokens.to(device), std::vector<int64_t>(B, 0), cache);
  auto last = torch::tensor(length, torch::kInt64).to(device).sub(1).view({B, 1, 1}).expand({B, 1, hidden.size(2)});
  auto logits = model->logits(hidden.gather(1, last).squeeze(1)).to(torch::kFloat32);

  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  std::vector<Generation> out(B);
  std::vector<bool> done(B, false);
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    torch::Tensor next, logp;
    if (options.temperature <= 0) {
      logp = torch::log_softmax(logits, -1);
      next = logits.argmax(-1);
    } else {
      logp = torch::log_softmax(logits / options.temperature, -1);
      next = torch::multinomial(logp.exp().cpu(), 1, false, gen).squeeze(1).to(device);
    }
    auto chosen_lp = logp.gather(-1, next.unsqueeze(-1)).squeeze(-1).cpu();
    auto next_cpu = next.cpu();
    auto ids_of = next_cpu.accessor<int64_t, 1>();
    auto lp_of = chosen_lp.accessor<float, 1>();
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      const int64_t id = ids_of[b];
      out[b].ids.push_back(id);
      out[b].logprobs.push_back(lp_of[b]);
      if (std::find(stop.begin(), stop.end(), id) != stop.end()) {
        done[b] = true;
        out[b].finish_reason = "stop";
      }
      all_done = all_done && done[b];
    }
    if (all_done || step + 1 == options.max_new_tokens) break;
    std::vector<int64_t> start(B);
    for (int64_t b = 0; b < B; ++b) start[b] = length[b] + step;
    hidden = model->forward_cached(next.view({B, 1}), start, cache);
    logits = model->logits(hidden.squeeze(1)).to(torch::kFloat32);
  }
  for (auto& g : out)
    if (g.finish_reason.empty()) g.finish_reason = "length";
  return out;
}

}  // namespace r1
