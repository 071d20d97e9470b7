// Reading JSONL data files, plain or gzipped (HumanEval ships as .jsonl.gz): every non-blank line
// must be a JSON object; errors name the file and line.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace r1 {

// Rows with the 1-based line each came from.
struct JsonlRow {
  nlohmann::json value;
  int line = 0;
};

std::vector<JsonlRow> read_jsonl_rows(const std::string& path);  // ".gz" paths are decompressed

}  // namespace r1
