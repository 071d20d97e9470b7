#include "rewards/rewards.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <regex>
#include <thread>

#include "rewards/answer_extraction.h"
#include "rewards/math_verifier.h"
#include "util/error.h"

namespace r1 {
namespace {

using nlohmann::json;

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

// The reference answer from metadata: "answer" as given, or the final answer inside a worked
// solution ("#### N" or \boxed{}).
std::string reference_answer(const json& metadata) {
  std::string ref;
  if (metadata.contains("answer")) {
    const json& a = metadata["answer"];
    ref = a.is_string() ? a.get<std::string>() : a.dump();
  } else if (metadata.contains("solution") && metadata["solution"].is_string()) {
    ref = metadata["solution"].get<std::string>();
  } else {
    throw Error("the math reward needs metadata 'answer' (or a 'solution' with a boxed answer)");
  }
  if (ref.find("####") != std::string::npos || ref.find("\\boxed") != std::string::npos) {
    const auto e = extract_answer(ref);
    if (e.found()) return e.text;
  }
  return ref;
}

// Completions of a prompt that already opened <think> (the deepseek-r1 template) lack the tag.
std::string with_think_opened(const RewardInput& in) {
  const size_t tail = in.prompt.find_last_not_of(" \n");
  if (tail != std::string::npos && tail >= 6 && in.prompt.compare(tail - 6, 7, "<think>") == 0) return "<think>" + in.completion;
  return in.completion;
}

// An answer that is still a sum, difference or product of plain numbers ("2 + 4", "7 \times 3")
// leaves the computation undone. A policy finds this: SmolLM2 under GRPO learned to
// box the question's own expression ("What is 2 + 4?" -> "\boxed{2 + 4}"), which the verifier
// evaluates to the right value. Fractions ("1/2", "\frac12") and anything with a symbol are answers.
bool unevaluated_arithmetic(std::string text) {
  for (const char* op : {"\\times", "\\cdot", "\\div", "\xc3\x97", "\xc3\xb7"}) {  // \times \cdot \div × ÷
    for (size_t at; (at = text.find(op)) != std::string::npos;) text.replace(at, std::string(op).size(), "*");
  }
  std::string compact;
  for (char c : text)
    if (c != ' ' && c != '$' && c != '(' && c != ')' && c != '{' && c != '}') compact += c;
  static const std::regex arithmetic(R"([-+]?\d+(\.\d+)?([-+*][-+]?\d+(\.\d+)?)+)");
  return std::regex_match(compact, arithmetic);
}

// gsm8k: also GSM8K's "#### N"; boxed_only: the answer must be in \boxed{} (R1's rule: "the
// final answer in a specified format, e.g. within a box"), "the answer is N" does not count.
RewardResult accuracy_math(const RewardInput& in, bool gsm8k, bool boxed_only = false) {
  RewardResult r;
  ExtractOptions o;
  o.gsm8k = gsm8k && !boxed_only;
  if (boxed_only) o.answer_tag = o.answer_is = false;
  // Only the part after the reasoning counts (a boxed guess inside <think> is not the answer).
  std::string text = in.completion;
  const size_t end_think = text.rfind("</think>");
  if (end_think != std::string::npos) text = text.substr(end_think + 8);
  const auto answer = extract_answer(text, o);
  const std::string ref = reference_answer(in.metadata);
  r.details = {{"extracted", answer.text}, {"source", answer.source}, {"reference", ref}};
  if (!answer.found()) {
    r.reason = "no answer found";
    return r;
  }
  if (unevaluated_arithmetic(answer.text)) {
    r.reason = "an unevaluated expression, not a final answer";
    return r;
  }
  // Several boxed answers must all agree, or the response hedges: 0.
  for (const auto& other : answer.all_boxed) {
    if (!math_equal(other, answer.text).equal) {
      r.reason = "several different boxed answers";
      return r;
    }
  }
  const auto verdict = math_equal(answer.text, ref);
  r.score = verdict.equal ? 1 : 0;
  r.reason = verdict.reason;
  return r;
}

RewardResult accuracy_code(const RewardInput& in, CodeSandbox& sandbox) {
  RewardResult r;
  const json& m = in.metadata;
  const std::string code = extract_code(in.completion);
  TestReport report;
  auto string_field = [&](const char* key) {
    if (!m[key].is_string()) throw Error(std::string("code reward: metadata '") + key + "' is not a string");
    return m[key].get<std::string>();
  };
  if (m.contains("test") && m.contains("entry_point")) {
    // HumanEval: the function's prompt + the completion; a completion that redefines the
    // function (a code block with "def entry_point") runs alone. The prompt also runs on the
    // tests' side: its helpers are part of the problem.
    const std::string entry = string_field("entry_point");
    const std::string prompt = m.contains("code_prompt") ? string_field("code_prompt") : in.prompt;
    const bool whole = code.find("def " + entry) != std::string::npos;
    report = sandbox.run_humaneval(whole ? code : prompt + code, prompt, string_field("test"), entry);
  } else if (m.contains("tests") && m["tests"].is_array() && !m["tests"].empty() && m["tests"][0].is_string()) {
    // Assert statements (MBPP style), each one test.
    std::vector<std::string> asserts;
    for (const auto& t : m["tests"]) {
      if (!t.is_string()) throw Error("code reward: 'tests' mixes assert strings with other values");
      asserts.push_back(t.get<std::string>());
    }
    report = sandbox.run_asserts(code, asserts, m.contains("test_setup") ? string_field("test_setup") : "");
  } else if (m.contains("tests") && m["tests"].is_array()) {
    std::vector<IoCase> cases;
    for (const auto& t : m["tests"]) {
      if (!t.is_object() || !t.contains("input") || !t.contains("output") || !t["input"].is_string() ||
          !t["output"].is_string())
        throw Error("code reward: each of 'tests' needs string 'input' and 'output' (or every test is an assert string)");
      cases.push_back({t["input"].get<std::string>(), t["output"].get<std::string>()});
    }
    report = sandbox.run_io(m.contains("language") ? string_field("language") : "python", code, cases);
  } else {
    throw Error("the code reward needs metadata 'test' + 'entry_point' (HumanEval), 'tests' as assert strings, or "
                "'tests' [{input, output}]");
  }
  r.score = report.pass_fraction();
  json tests = json::array();
  for (const auto& t : report.tests) tests.push_back({{"verdict", t.verdict}, {"detail", t.detail.substr(0, 500)}});
  r.details = {{"tests", tests}};
  r.reason = std::to_string(static_cast<int>(std::lround(r.score * report.tests.size()))) + "/" +
             std::to_string(report.tests.size()) + " tests passed";
  return r;
}

// The format R1's accuracy rule asks for, on its own: the final answer (after any </think>) in a
// non-empty \boxed{}, right or wrong. A shaping reward for models that state answers but never box
// them (SmolLM2-135M-Instruct boxes a number in 1 of 256 samples), beside an accuracy reward.
RewardResult format_boxed(const RewardInput& in) {
  RewardResult r;
  std::string text = in.completion;
  const size_t end_think = text.rfind("</think>");
  if (end_think != std::string::npos) text = text.substr(end_think + 8);
  const auto boxes = boxed_contents(text);
  const bool filled = !boxes.empty() && boxes.back().find_first_not_of(" \t\r\n") != std::string::npos;
  r.score = filled ? 1 : 0;
  r.reason = filled ? "boxed answer" : boxes.empty() ? "no \\boxed{} answer" : "an empty \\boxed{}";
  return r;
}

RewardResult format_think(const RewardInput& in) {
  // R1-Zero: exactly one <think>...</think>, then the answer in <answer>...</answer> or \boxed{}.
  RewardResult r;
  const std::string text = with_think_opened(in);
  if (count_of(text, "<think>") != 1 || count_of(text, "</think>") != 1) {
    r.reason = "not exactly one <think>...</think> block";
    return r;
  }
  const size_t open = text.find("<think>"), close = text.find("</think>");
  if (close < open || text.find_first_not_of(" \t\r\n") != open) {
    r.reason = "the response must start with <think> and close it";
    return r;
  }
  const std::string after = text.substr(close + 8);
  static const std::regex answer_tag("^\\s*<answer>[\\s\\S]*</answer>\\s*$");
  const bool tagged = std::regex_match(after, answer_tag) && count_of(after, "<answer>") == 1;
  const bool boxed = !boxed_contents(after).empty();
  if (!tagged && !boxed) {
    r.reason = "no <answer>...</answer> or \\boxed{} after the reasoning";
    return r;
  }
  r.score = 1;
  r.reason = tagged ? "think + answer tags" : "think + boxed answer";
  return r;
}

RewardResult tag_count(const RewardInput& in) {
  // open-r1's partial credit: 0.25 for each of the four tags appearing exactly once.
  const std::string text = with_think_opened(in);
  RewardResult r;
  for (const char* tag : {"<think>", "</think>", "<answer>", "</answer>"}) r.score += count_of(text, tag) == 1 ? 0.25 : 0;
  r.reason = std::to_string(static_cast<int>(r.score * 4)) + "/4 tags once";
  return r;
}

// The writing system of a code point, for language consistency.
int script_of(uint32_t c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= 0xC0 && c <= 0x24F)) return 1;  // Latin
  if ((c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x3040 && c <= 0x30FF) ||
      (c >= 0xAC00 && c <= 0xD7AF))
    return 2;  // CJK (Han, kana, Hangul)
  if (c >= 0x400 && c <= 0x4FF) return 3;    // Cyrillic
  if (c >= 0x600 && c <= 0x6FF) return 4;    // Arabic
  if (c >= 0x900 && c <= 0x97F) return 5;    // Devanagari
  if (c >= 0x370 && c <= 0x3FF) return 6;    // Greek
  return 0;
}

std::map<int, size_t> script_counts(const std::string& text) {
  std::map<int, size_t> counts;
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = text[i];
    uint32_t cp = c;
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (len > 1 && i + len <= text.size()) {
      cp = c & (0xFF >> (len + 1));
      for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    }
    i += len;
    if (const int s = script_of(cp)) ++counts[s];
  }
  return counts;
}

RewardResult language_consistency(const RewardInput& in) {
  // DeepSeek-R1: the share of the chain of thought written in the prompt's language (here: its
  // writing system, from the letters of each).
  RewardResult r;
  const auto prompt_scripts = script_counts(in.prompt);
  if (prompt_scripts.empty()) {
    r.score = 1;
    r.reason = "the prompt has no letters";
    return r;
  }
  const int target = std::max_element(prompt_scripts.begin(), prompt_scripts.end(),
                                      [](const auto& a, const auto& b) { return a.second < b.second; })->first;
  std::string cot = with_think_opened(in);
  const size_t open = cot.find("<think>"), close = cot.find("</think>");
  if (open != std::string::npos) cot = cot.substr(open + 7, close == std::string::npos ? std::string::npos : close - open - 7);
  const auto counts = script_counts(cot);
  size_t total = 0;
  for (const auto& [s, n] : counts) total += n;
  r.score = total == 0 ? 1.0 : static_cast<double>(counts.count(target) ? counts.at(target) : 0) / total;
  r.reason = "share of letters in the prompt's script";
  return r;
}

RewardResult length_overlong(const RewardInput& in, const RewardOptions& o) {
  // DAPO: 0 up to L_max - L_cache, then linearly down to -1 at L_max, -1 beyond.
  RewardResult r;
  if (!in.metadata.contains("completion_tokens"))
    throw Error("length_overlong needs metadata 'completion_tokens' (GRPO and r1 eval supply it)");
  const double len = in.metadata["completion_tokens"].get<double>();
  const double lmax = static_cast<double>(o.overlong_max_tokens), cache = static_cast<double>(o.overlong_cache_tokens);
  if (len <= lmax - cache) r.score = 0;
  else if (len <= lmax) r.score = (lmax - cache - len) / cache;
  else r.score = -1;
  r.reason = "length " + std::to_string(static_cast<int64_t>(len)) + " of " + std::to_string(o.overlong_max_tokens);
  return r;
}

RewardResult external(const RewardInput& in, const RewardOptions& o) {
  if (o.external_command.empty()) throw Error("the external reward needs a command (--reward-command)");
  const json request = {{"prompt", in.prompt}, {"completion", in.completion}, {"metadata", in.metadata}};
  const RunResult run = run_command(o.external_command, request.dump() + "\n", o.external_timeout_s);
  RewardResult r;
  if (run.status != "ok") {
    r.reason = "external command " + run.status + ": " + run.err.substr(0, 300);
    return r;
  }
  try {
    const json out = json::parse(run.out);
    if (out.is_number()) {
      r.score = out.get<double>();
    } else if (out.is_object() && out.contains("score") && out["score"].is_number()) {
      r.score = out["score"].get<double>();
      r.reason = out.value("reason", "");
      r.details = out;
    } else {
      throw Error("expected a number or {\"score\": ...}");
    }
  } catch (const std::exception& e) {
    r.score = 0;
    r.reason = std::string("external command printed no score: ") + e.what();
  }
  if (r.reason.empty()) r.reason = "external";
  return r;
}

}  // namespace

const std::vector<std::string>& reward_names() {
  static const std::vector<std::string> names = {"accuracy_math", "accuracy_boxed", "accuracy_gsm8k",
                                                 "accuracy_code", "format_think", "format_boxed", "tag_count",
                                                 "language_consistency", "length_overlong", "external"};
  return names;
}

bool has_think_block(const RewardInput& input) {
  const std::string text = with_think_opened(input);
  const size_t open = text.find("<think>");
  return open != std::string::npos && text.find("</think>", open + 7) != std::string::npos;
}

std::string extract_code(const std::string& completion) {
  const size_t close = completion.rfind("```");
  if (close == std::string::npos) return completion;
  const size_t open = close == 0 ? std::string::npos : completion.rfind("```", close - 1);
  if (open == std::string::npos) return completion;
  const size_t body = completion.find('\n', open);
  if (body == std::string::npos || body > close) return completion;
  return completion.substr(body + 1, close - body - 1);
}

RewardFn make_reward(const std::string& name, const RewardOptions& o, std::shared_ptr<CodeSandbox> sandbox) {
  if (name == "accuracy_math") return [](const RewardInput& in) { return accuracy_math(in, false); };
  if (name == "accuracy_gsm8k") return [](const RewardInput& in) { return accuracy_math(in, true); };
  if (name == "accuracy_boxed") return [](const RewardInput& in) { return accuracy_math(in, false, true); };
  if (name == "accuracy_code") {
    if (!sandbox) sandbox = std::make_shared<CodeSandbox>(o.sandbox, 0, o.unsafe_no_sandbox);
    return [sandbox](const RewardInput& in) { return accuracy_code(in, *sandbox); };
  }
  if (name == "format_think") return format_think;
  if (name == "format_boxed") return format_boxed;
  if (name == "tag_count") return tag_count;
  if (name == "language_consistency") return language_consistency;
  if (name == "length_overlong") return [o](const RewardInput& in) { return length_overlong(in, o); };
  if (name == "external") {
    if (o.external_command.empty()) throw Error("reward 'external' needs --reward-command \"CMD ARGS\"");
    return [o](const RewardInput& in) { return external(in, o); };
  }
  std::string known;
  for (const auto& n : reward_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown reward '" + name + "' (rewards: " + known + ")");
}

std::vector<WeightedReward> parse_reward_spec(const std::string& spec) {
  std::vector<WeightedReward> out;
  size_t start = 0;
  while (start <= spec.size()) {
    const size_t comma = std::min(spec.find(',', start), spec.size());
    const std::string item = spec.substr(start, comma - start);
    start = comma + 1;
    if (item.empty()) {
      if (comma >= spec.size()) break;
      throw Error("--reward '" + spec + "': an empty item");
    }
    WeightedReward w;
    if (item.rfind("rm:", 0) == 0) {  // rm:DIR or rm:DIR:weight (a path may hold ':' too)
      w.name = "rm";
      w.model_dir = item.substr(3);
      const size_t last = w.model_dir.rfind(':');
      if (last != std::string::npos) {
        try {
          size_t used = 0;
          const double weight = std::stod(w.model_dir.substr(last + 1), &used);
          if (used == w.model_dir.size() - last - 1) {
            w.weight = weight;
            w.model_dir.resize(last);
          }
        } catch (const std::exception&) {
        }
      }
      if (w.model_dir.empty()) throw Error("--reward '" + item + "': rm needs a directory (rm:DIR[:weight])");
      for (const auto& other : out)
        if (other.name == "rm") throw Error("--reward '" + spec + "': only one reward model (rm:DIR) per run");
      out.push_back(w);
      continue;
    }
    const size_t colon = item.find(':');
    w.name = item.substr(0, colon);
    if (colon != std::string::npos) {
      try {
        size_t used = 0;
        w.weight = std::stod(item.substr(colon + 1), &used);
        if (used != item.size() - colon - 1) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        throw Error("--reward '" + item + "': the weight is not a number");
      }
    }
    out.push_back(w);
  }
  if (out.empty()) throw Error("--reward is empty (e.g. accuracy_math:1,format_think:0.5)");
  return out;
}

CombinedReward::CombinedReward(const std::string& spec, const RewardOptions& options) : parts_(parse_reward_spec(spec)) {
  std::shared_ptr<CodeSandbox> sandbox;
  for (const auto& p : parts_) {
    if (p.name == "rm") {
      if (!options.model_reward)
        throw Error("--reward rm:" + p.model_dir + ": this command cannot run a reward model (r1 grpo, r1 sample can)");
      functions_.emplace_back();
      batch_functions_.push_back(options.model_reward(p.model_dir));
      continue;
    }
    if (p.name == "accuracy_code" && !sandbox)
      sandbox = std::make_shared<CodeSandbox>(options.sandbox, 0, options.unsafe_no_sandbox);
    functions_.push_back(make_reward(p.name, options, sandbox));
    batch_functions_.emplace_back();
  }
}

ScoredCompletion CombinedReward::score(const RewardInput& input) const {
  std::vector<ScoredCompletion> out = {score_rules(input)};
  add_batch_parts({input}, out);
  return out.front();
}

std::string CombinedReward::first_rule_reward() const {
  for (const auto& p : parts_)
    if (p.name != "rm") return p.name;
  return "";
}

ScoredCompletion CombinedReward::score_rules(const RewardInput& input) const {
  ScoredCompletion s;
  for (size_t i = 0; i < parts_.size(); ++i) {
    if (!functions_[i]) continue;
    RewardResult r;
    try {
      r = functions_[i](input);
    } catch (const Error& e) {  // bad metadata for this reward: an error that names it
      throw Error("reward " + parts_[i].name + ": " + e.what());
    }
    s.total += parts_[i].weight * r.score;
    s.components[parts_[i].name] = std::move(r);
  }
  return s;
}

std::vector<ScoredCompletion> CombinedReward::score_batch(const std::vector<RewardInput>& inputs, int threads) const {
  std::vector<ScoredCompletion> out(inputs.size());
  const int n = std::max(1, std::min<int>(threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency()),
                                          static_cast<int>(inputs.size())));
  std::atomic<size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  std::vector<std::thread> pool;
  for (int t = 0; t < n; ++t)
    pool.emplace_back([&] {
      for (size_t i = next++; i < inputs.size(); i = next++) {
        try {
          out[i] = score_rules(inputs[i]);
        } catch (...) {
          std::lock_guard<std::mutex> lock(failure_mutex);
          if (!failure) failure = std::current_exception();
        }
      }
    });
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
  add_batch_parts(inputs, out);
  return out;
}

void CombinedReward::add_batch_parts(const std::vector<RewardInput>& inputs, std::vector<ScoredCompletion>& out) const {
  for (size_t k = 0; k < parts_.size(); ++k) {  // learned rewards: one batched call each
    if (!batch_functions_[k] || inputs.empty()) continue;
    std::vector<RewardResult> results = batch_functions_[k](inputs);
    if (results.size() != inputs.size()) throw Error("reward " + parts_[k].name + ": returned a wrong number of scores");
    for (size_t i = 0; i < inputs.size(); ++i) {
      out[i].total += parts_[k].weight * results[i].score;
      out[i].components[parts_[k].name] = std::move(results[i]);
    }
  }
}

}  // namespace r1
