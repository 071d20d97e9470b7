#include "data/prepare.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "data/fim.h"
#include "data/token_shards.h"
#include "util/error.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

constexpr size_t kBatchBytes = 16 << 20;  // documents encoded together (bounded memory)

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    if (fs::is_directory(in)) {
      std::vector<std::string> found;
      for (const auto& e : fs::recursive_directory_iterator(in))
        if (e.is_regular_file()) found.push_back(e.path().string());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(in)) {
      files.push_back(in);
    } else {
      throw Error(in + ": no such file or directory");
    }
  }
  return files;
}

bool is_jsonl(const std::string& path) {
  return path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
}

}  // namespace

PrepareSummary prepare_shards(const Tokenizer& tokenizer, const std::vector<std::string>& inputs,
                              const std::string& out_dir, const PrepareOptions& options) {
  std::optional<int32_t> eos = options.eos.empty() ? tokenizer.eos_id() : tokenizer.token_to_id(options.eos);
  if (!eos)
    throw Error(options.eos.empty() ? "the tokenizer names no EOS token (tokenizer_config.json eos_token); pass --eos TOKEN"
                                    : "--eos '" + options.eos + "' is not a token of this tokenizer");
  const auto files = expand_inputs(inputs);
  uint64_t total_bytes = 0;
  for (const auto& f : files) total_bytes += fs::file_size(f);
  fs::create_directories(out_dir);
  const uint32_t bytes_per_token = tokenizer.vocab_size() <= 65536 ? 2 : 4;
  const uint64_t fingerprint = tokenizer.fingerprint();
  std::optional<FimTokens> fim;
  if (options.fim_rate > 0) {
    fim = find_fim_tokens(tokenizer);
    if (!fim) throw Error("--fim-rate: the tokenizer has no fill-in-the-middle tokens (<｜fim▁begin｜>, <|fim_prefix|>, ...)");
  }

  PrepareSummary summary;
  nlohmann::json shard_list = nlohmann::json::array();
  std::unique_ptr<TokenShardWriter> writer;
  auto shard_name = [&](size_t i) {
    char name[32];
    std::snprintf(name, sizeof name, "shard-%05zu.bin", i);
    return std::string(name);
  };
  auto close_shard = [&] {
    if (!writer) return;
    writer->close();
    shard_list.push_back({{"file", shard_name(summary.shards)}, {"tokens", writer->tokens()}});
    ++summary.shards;
    writer.reset();
  };
  // Pieces to encode together: a document, or its prefix, middle and suffix when FIM cut it.
  std::vector<std::string> batch;
  std::vector<bool> batch_fim;  // per document
  size_t batch_bytes = 0;
  uint64_t added = 0;
  auto flush = [&] {
    auto pieces = tokenizer.encode_batch(batch, false, options.threads);
    for (size_t piece = 0, d = 0; d < batch_fim.size(); ++d) {
      std::vector<int32_t> ids;
      if (batch_fim[d]) {
        ids = fim_psm(*fim, pieces[piece], pieces[piece + 1], pieces[piece + 2]);
        piece += 3;
      } else {
        ids = std::move(pieces[piece++]);
      }
      if (tokenizer.adds_bos() && tokenizer.bos_id()) ids.insert(ids.begin(), *tokenizer.bos_id());
      ids.push_back(*eos);
      if (!writer)
        writer = std::make_unique<TokenShardWriter>((fs::path(out_dir) / shard_name(summary.shards)).string(),
                                                    bytes_per_token, fingerprint);
      writer->append(ids);
      summary.tokens += ids.size();
      ++summary.documents;
      if (writer->tokens() >= options.shard_tokens) close_shard();
    }
    batch.clear();
    batch_fim.clear();
    batch_bytes = 0;
    if (options.progress) options.progress("tokenizing", summary.bytes >> 20, total_bytes >> 20, " MB");
  };
  auto add = [&](std::string doc) {
    batch_bytes += doc.size();
    const auto split = fim ? fim_split(doc, options.fim_rate, options.fim_seed, added) : std::nullopt;
    ++added;
    batch_fim.push_back(split.has_value());
    if (split) {
      batch.emplace_back(split->prefix);
      batch.emplace_back(split->middle);
      batch.emplace_back(split->suffix);
    } else {
      batch.push_back(std::move(doc));
    }
    if (batch_bytes >= kBatchBytes) flush();
  };
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open");
    if (!is_jsonl(path)) {
      std::stringstream ss;
      ss << in.rdbuf();
      summary.bytes += ss.str().size();
      if (!ss.str().empty()) add(ss.str());
      continue;
    }
    std::string line;
    for (int lineno = 1; std::getline(in, line); ++lineno) {
      summary.bytes += line.size() + 1;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      std::string problem;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
        if (!j.is_object() || !j.contains(options.field) || !j[options.field].is_string())
          problem = "field '" + options.field + "' is missing or not a string";
      } catch (const nlohmann::json::exception& e) {
        problem = std::string("invalid JSON (") + e.what() + ")";
      }
      if (!problem.empty()) {
        if (!options.skip_bad_lines)
          throw Error(path + ":" + std::to_string(lineno) + ": " + problem + " (--skip-bad-lines skips such lines)");
        ++summary.bad_lines;
        continue;
      }
      add(j[options.field].get<std::string>());
    }
  }
  if (!batch_fim.empty()) flush();
  close_shard();
  if (summary.documents == 0) throw Error("no documents in the inputs");
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fingerprint));
  const nlohmann::json manifest = {{"format", "r1-token-shards"}, {"version", kShardVersion},
                                   {"tokenizer_fingerprint", hex}, {"bytes_per_token", bytes_per_token},
                                   {"documents", summary.documents}, {"tokens", summary.tokens},
                                   {"bad_lines_skipped", summary.bad_lines}, {"fim_rate", options.fim_rate},
                                   {"shards", shard_list}};
  const std::string manifest_path = (fs::path(out_dir) / "manifest.json").string();
  write_text_file(manifest_path + ".tmp", manifest.dump(2) + "\n");
  fs::rename(manifest_path + ".tmp", manifest_path);
  return summary;
}

}  // namespace r1
