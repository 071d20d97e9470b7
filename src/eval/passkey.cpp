#include "eval/passkey.h"

#include <cmath>
#include <random>
#include <string>

#include "infer/engine.h"
#include "util/error.h"

namespace r1 {
namespace {

const char* const kTask =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you "
    "about the important information there.";
const char* const kFiller = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
const char* const kQuestion = " What is the pass key? The pass key is";

std::string key_sentence(int64_t key) {
  return " The pass key is " + std::to_string(key) + ". Remember it. " + std::to_string(key) + " is the pass key.";
}

}  // namespace

int64_t passkey_answer(const std::string& text) {
  size_t i = text.find_first_of("0123456789");
  if (i == std::string::npos) return -1;
  size_t j = text.find_first_not_of("0123456789", i);
  const std::string digits = text.substr(i, std::min<size_t>(j == std::string::npos ? text.size() - i : j - i, 12));
  return std::stoll(digits);
}

std::vector<int64_t> passkey_prompt(const Tokenizer& tokenizer, int64_t context, double depth, int64_t key) {
  auto ids = [&](const std::string& s) { return tokenizer.encode(s, false); };
  const auto task = ids(kTask), filler = ids(kFiller), keyed = ids(key_sentence(key)), question = ids(kQuestion);
  const int64_t fixed = static_cast<int64_t>(task.size() + keyed.size() + question.size()) + 1;
  if (context < fixed)
    throw Error("passkey: a context of " + std::to_string(context) + " tokens cannot hold the task, key and question (" +
                std::to_string(fixed) + " tokens with this tokenizer)");
  const int64_t repeats = std::max<int64_t>(0, (context - fixed) / static_cast<int64_t>(filler.size()));
  const int64_t before = std::llround(depth * static_cast<double>(repeats));
  std::vector<int64_t> out;
  if (tokenizer.adds_bos() && tokenizer.bos_id()) out.push_back(*tokenizer.bos_id());
  out.insert(out.end(), task.begin(), task.end());
  for (int64_t r = 0; r < repeats; ++r) {
    if (r == before) out.insert(out.end(), keyed.begin(), keyed.end());
    out.insert(out.end(), filler.begin(), filler.end());
  }
  if (before >= repeats) out.insert(out.end(), keyed.begin(), keyed.end());
  out.insert(out.end(), question.begin(), question.end());
  return out;
}

std::vector<PasskeyCell> eval_passkey(Transformer& model, const Tokenizer& tokenizer, const PasskeyOptions& o,
                                      const std::function<void(const PasskeyCell&)>& on_cell) {
  if (o.trials < 1) throw Error("passkey: --trials must be at least 1");
  for (double d : o.depths)
    if (!(d >= 0 && d <= 1)) throw Error("passkey: depths are fractions between 0 and 1, got " + std::to_string(d));
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int64_t> keys(10000, 99999);
  std::vector<PasskeyCell> cells;
  torch::NoGradGuard no_grad;
  model->eval();
  for (int64_t context : o.contexts) {
    for (double depth : o.depths) {
      std::vector<std::vector<int64_t>> prompts;
      std::vector<int64_t> want;
      for (int64_t t = 0; t < o.trials; ++t) {
        want.push_back(keys(rng));
        prompts.push_back(passkey_prompt(tokenizer, context, depth, want.back()));
      }
      std::vector<Request> requests(prompts.size());
      for (size_t t = 0; t < prompts.size(); ++t) {
        requests[t].prompt = prompts[t];
        requests[t].params.temperature = 0;
        requests[t].params.max_new_tokens = 8;
      }
      EngineOptions engine_options;
      engine_options.max_batch = static_cast<int64_t>(prompts.size());
      engine_options.max_context = static_cast<int64_t>(prompts[0].size()) + 8;
      Engine engine(model, &tokenizer, engine_options);
      const auto outs = engine.generate(requests);
      PasskeyCell cell{context, static_cast<int64_t>(prompts[0].size()), depth, 0, o.trials};
      for (size_t t = 0; t < outs.size(); ++t) cell.passed += passkey_answer(outs[t][0].text) == want[t];
      cells.push_back(cell);
      if (on_cell) on_cell(cell);
    }
  }
  return cells;
}

}  // namespace r1
