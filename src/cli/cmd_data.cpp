// r1 data prepare: tokenize text / JSONL into token shards for pretraining.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
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
}

}  // namespace r1::cli
