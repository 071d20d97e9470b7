// Reward functions for GRPO and r1 eval, one interface: (prompt, completion, metadata) -> score
// + reason + details. The rule-based rewards of DeepSeek-R1-Zero (is the answer right, is the
// reasoning in <think>...</think>) and the usual additions (tag counting, language consistency,
// DAPO's overlong punishment, code tests, an external command), combined by weighted sums:
//   --reward accuracy_math:1,format_think:0.5
// Torch-free.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rewards/sandbox.h"

namespace r1 {

struct RewardInput {
  std::string prompt;
  std::string completion;
  // What the rewards check against: "answer" (math); for code "test" + "entry_point" (+
  // "code_prompt", HumanEval), "tests" as assert statements (+ "test_setup"), or "tests" as
  // {input, output} cases (+ "language"); "completion_tokens" for length rewards, ...
  nlohmann::json metadata = nlohmann::json::object();
};

struct RewardResult {
  double score = 0;
  std::string reason;
  nlohmann::json details = nlohmann::json::object();
};

// A reward that scores a whole batch at once (a learned reward model: one batched forward).
using BatchRewardFn = std::function<std::vector<RewardResult>(const std::vector<RewardInput>&)>;

struct RewardOptions {
  int64_t overlong_max_tokens = 4096;  // DAPO: L_max
  int64_t overlong_cache_tokens = 512; // DAPO: the soft-punishment window before L_max
  std::vector<std::string> external_command;  // for "external": argv; JSON on stdin, score on stdout
  double external_timeout_s = 30;
  SandboxLimits sandbox;
  bool unsafe_no_sandbox = false;  // run generated code with rlimits and seccomp alone where bubblewrap cannot isolate it
  // Makes the batch reward of `rm:DIR` items (set by the commands that can run a reward model;
  // rewards/ itself stays torch-free).
  std::function<BatchRewardFn(const std::string& dir)> model_reward;
};

using RewardFn = std::function<RewardResult(const RewardInput&)>;

// The built-in rewards by name; throws r1::Error for an unknown name (listing the known ones).
RewardFn make_reward(const std::string& name, const RewardOptions& options, std::shared_ptr<CodeSandbox> sandbox);
const std::vector<std::string>& reward_names();

// Whether the response reasons in a closed <think>...</think> block (the tag may open in the
// prompt, as the deepseek-r1 template's does): the thinking rate of r1 eval and the demo. The full
// R1-Zero format (one block at the start, then the answer) is the format_think reward.
bool has_think_block(const RewardInput& input);

// The code a completion holds: the last ```python/```cpp/``` block, else the whole text.
std::string extract_code(const std::string& completion);

struct WeightedReward {
  std::string name;
  double weight = 1;
  std::string model_dir;  // for "rm": the reward model directory
};
// "accuracy_math:1,format_think:0.5" (weight 1 when omitted); "rm:DIR[:weight]" is a learned reward
// model (component name "rm").
std::vector<WeightedReward> parse_reward_spec(const std::string& spec);

struct ScoredCompletion {
  double total = 0;
  std::map<std::string, RewardResult> components;
};

// A weighted sum of rewards; score_batch runs the completions in parallel.
class CombinedReward {
 public:
  CombinedReward(const std::string& spec, const RewardOptions& options = {});
  ScoredCompletion score(const RewardInput& input) const;
  std::vector<ScoredCompletion> score_batch(const std::vector<RewardInput>& inputs, int threads = 0) const;
  const std::vector<WeightedReward>& parts() const { return parts_; }
  // The first rule-based part (not a reward model), "" if none: what "correct" / "accuracy" means.
  std::string first_rule_reward() const;

 private:
  ScoredCompletion score_rules(const RewardInput& input) const;  // every part but the batch ones
  void add_batch_parts(const std::vector<RewardInput>& inputs, std::vector<ScoredCompletion>& out) const;
  std::vector<WeightedReward> parts_;
  std::vector<RewardFn> functions_;       // null for batch parts
  std::vector<BatchRewardFn> batch_functions_;  // null for per-completion parts
};

}  // namespace r1
