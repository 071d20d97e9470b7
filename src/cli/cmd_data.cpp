// r1 data prepare: tokenize text / JSONL into token shards for pretraining.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "data/arithmetic_task.h"
#include "data/prepare.h"
#include "util/progress.h"

namespace r1::cli {

void add_data_command(CLI::App& app) {
  auto* data = app.add_subcommand("data", "prepare training data");
  data->require_subcommand(1);
  auto* prep = data->add_subcommand("prepare", "tokenize files (text, *.jsonl, directories) into token shards");
  struct Args {
    std::string tokenizer, out;
    std::vector<std::string> inputs;
    PrepareOptions options;
  };
  auto a = std::make_shared<Args>();
  prep->add_option("--tokenizer", a->tokenizer, "tokenizer.json")->required()->check(CLI::ExistingFile);
  prep->add_option("--input", a->inputs, "files or directories; *.jsonl hold one document per line")->required();
  prep->add_option("--out", a->out, "output directory (shards + manifest.json)")->required();
  prep->add_option("--field", a->options.field, "JSONL field holding the document")->capture_default_str();
  prep->add_option("--shard-tokens", a->options.shard_tokens, "tokens per shard")->capture_default_str()->check(CLI::PositiveNumber);
  prep->add_option("--eos", a->options.eos, "document separator token (default: tokenizer_config.json's eos_token)");
  prep->add_flag("--skip-bad-lines", a->options.skip_bad_lines, "count and skip malformed JSONL lines");
  prep->add_option("--fim-rate", a->options.fim_rate,
                   "share of documents rewritten for fill-in-the-middle, PSM order (DeepSeek-Coder: 0.5)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  prep->add_option("--fim-seed", a->options.fim_seed, "seed of the FIM choices and cut points")->capture_default_str();
  prep->add_option("--threads", a->options.threads, "tokenizer threads (0 = all cores)")->capture_default_str();
  prep->callback([a] {
    Tokenizer tokenizer = Tokenizer::load(a->tokenizer);
    auto bar = std::make_shared<ProgressBar>();
    a->options.progress = [bar](const std::string& stage, uint64_t done, uint64_t total, const std::string& unit) {
      bar->update(stage, done, total, unit);
    };
    const PrepareSummary s = prepare_shards(tokenizer, a->inputs, a->out, a->options);
    bar->finish();
    std::printf("wrote %s: %llu documents, %llu tokens in %zu shards from %.1f MB%s\n", a->out.c_str(),
                (unsigned long long)s.documents, (unsigned long long)s.tokens, s.shards, s.bytes / 1e6,
                s.bad_lines ? (", skipped " + std::to_string(s.bad_lines) + " bad lines").c_str() : "");
  });
  // r1 data arithmetic: the built-in task of the tiny R1-Zero demo (data/arithmetic_task.h).
  auto* arith = data->add_subcommand("arithmetic", "write the built-in arithmetic task: corpus, train and held-out problems");
  auto t = std::make_shared<std::pair<ArithmeticTaskOptions, std::string>>();
  arith->add_option("--out", t->second, "output directory")->required();
  arith->add_option("--seed", t->first.seed)->capture_default_str();
  arith->add_option("--ops", t->first.ops, "operations, each problem picks one: add, sub, mul (by one digit), chain (a+b-c)")
      ->delimiter(',')->capture_default_str();
  arith->add_option("--corpus-documents", t->first.corpus_documents)->capture_default_str();
  arith->add_option("--think-fraction", t->first.think_fraction, "corpus documents that reason in <think>")->capture_default_str();
  arith->add_option("--train-problems", t->first.train_problems)->capture_default_str();
  arith->add_option("--test-problems", t->first.test_problems)->capture_default_str();
  arith->add_option("--min-digits", t->first.min_digits)->capture_default_str();
  arith->add_option("--max-digits", t->first.max_digits)->capture_default_str();
  arith->add_option("--test-digits", t->first.test_digits, "operand digits of the held-out problems")->capture_default_str();
  arith->add_option("--test-min-carries", t->first.test_min_carries,
                    "held-out problems need at least this many carries (borrows for subtraction)")
      ->capture_default_str();
  arith->add_option("--style", t->first.style,
                    "qa: \"Q: 12+7=? A:\" prompts for base models; chat: \"What is 12 + 7?\" questions for instruct models, "
                    "GRPO prompts asking for a \\boxed{} answer")
      ->capture_default_str();
  arith->callback([t] {
    const auto s = write_arithmetic_task(t->second, t->first);
    std::printf("arithmetic task in %s: %lld corpus documents (%lld reasoning), %lld train, %lld held-out problems\n",
                t->second.c_str(), (long long)s.corpus_documents, (long long)s.think_documents,
                (long long)s.train_problems, (long long)s.test_problems);
  });
}

}  // namespace r1::cli
