// r1 sample: rejection sampling into SFT data (distill/rejection_sampling.h).
#include <csignal>
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/runtime.h"
#include "distill/rejection_sampling.h"
#include "util/error.h"
#include "util/progress.h"

namespace r1::cli {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void request_sample_stop(int) { g_stop = true; }

}  // namespace

void add_sample_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("sample", "rejection sampling: N answers per prompt, scored and filtered into SFT data");
  struct Args {
    SampleOptions o;
    RuntimeOptions rt;
  };
  auto a = std::make_shared<Args>();
  auto& o = a->o;
  cmd->add_option("--model", o.model, "the model to sample from (directory with tokenizer.json)")->required();
  cmd->add_option("--prompts", o.prompts, "JSONL: prompt/problem/question or messages, plus answer/tests for the rewards")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", o.out, "SFT JSONL to write (rows with scores and provenance)")->required();
  cmd->add_option("--summary", o.summary, "summary JSON (default: OUT.summary.json)");
  cmd->add_option("--prompt-template", o.prompt_template, "r1-zero, chat, plain")->capture_default_str();
  cmd->add_option("--chat-template", o.chat_template, "for --prompt-template chat: a template name");
  cmd->add_option("--format", o.format, "rows as prompt-completion or messages (auto: messages for chat)")
      ->capture_default_str();
  cmd->add_option("--n", o.n, "answers per prompt")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", o.temperature)->capture_default_str();
  cmd->add_option("--top-p", o.top_p)->capture_default_str();
  cmd->add_option("--max-new-tokens", o.max_new_tokens)->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--reward", o.reward, "weighted rewards; the first rule-based one decides 'correct'")->capture_default_str();
  cmd->add_option("--reward-command", o.reward_options.external_command, "command of the 'external' reward")
      ->expected(1, -1)->delimiter(' ');
  cmd->add_flag("--unsafe-no-sandbox", o.reward_options.unsafe_no_sandbox, kUnsafeNoSandboxHelp);
  cmd->add_option("--keep", o.keep, "correct (right answers), best (the top-scoring one per prompt), all")
      ->capture_default_str();
  cmd->add_option("--min-reward", o.min_reward, "drop answers whose total reward is below this");
  cmd->add_flag("--require-format", o.require_format, "keep only answers that reason in <think>...</think>");
  cmd->add_option("--max-tokens", o.max_tokens, "drop answers longer than this many tokens (0: no limit)")
      ->capture_default_str();
  cmd->add_flag("--no-language-mixing", o.no_language_mixing, "drop answers that mix scripts (language_consistency)");
  cmd->add_flag("--keep-truncated", o.keep_truncated, "also keep answers cut off by --max-new-tokens");
  cmd->add_option("--batch-prompts", o.batch_prompts, "prompts per engine batch and per resumable chunk")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o.seed)->capture_default_str();
  cmd->add_option("--reward-threads", o.reward_threads, "parallel reward checks (0 = cores)")->capture_default_str();
  cmd->add_flag("--resume", o.resume, "continue an interrupted run into the same --out");
  a->rt.add_to(cmd);
  cmd->callback([a] {
    a->rt.setup();
    a->o.device = a->rt.device;
    std::signal(SIGINT, request_sample_stop);
    std::signal(SIGTERM, request_sample_stop);
    ProgressBar bar;
    const SampleSummary s = rejection_sample(a->o, &g_stop, [&](int64_t done, int64_t total) {
      bar.update("sample", static_cast<uint64_t>(done), static_cast<uint64_t>(total), " prompts");
    });
    bar.finish();
    const int64_t finished = static_cast<int64_t>(s.kept_per_prompt.size());
    if (finished < s.prompts) {
      std::printf("stopped after %lld of %lld prompts; --resume continues into %s\n", (long long)finished,
                  (long long)s.prompts, a->o.out.c_str());
      return;
    }
    std::printf("sample: %lld prompts x %lld, %lld correct (pass@%lld %.3f), kept %lld (%.1f%%): %s\n",
                (long long)s.prompts, (long long)a->o.n, (long long)s.correct, (long long)a->o.n,
                s.prompts ? static_cast<double>(s.prompts_with_correct) / s.prompts : 0.0, (long long)s.kept,
                s.samples ? 100.0 * s.kept / s.samples : 0.0, a->o.out.c_str());
  });
}

}  // namespace r1::cli
