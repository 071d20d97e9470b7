#include "util/jsonl.h"

#include <fstream>
#include <iterator>

#include <zlib.h>

#include "util/error.h"

namespace r1 {

std::vector<JsonlRow> read_jsonl_rows(const std::string& path) {
  std::string text;
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) throw Error(path + ": cannot open");
    char buffer[1 << 16];
    int n = 0;
    while ((n = gzread(f, buffer, sizeof buffer)) > 0) text.append(buffer, n);
    const bool failed = n < 0;
    gzclose(f);
    if (failed) throw Error(path + ": not a valid gzip file");
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open");
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::vector<JsonlRow> rows;
  size_t start = 0;
  for (int line = 1; start < text.size(); ++line) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string row = text.substr(start, end - start);
    start = end + 1;
    if (row.find_first_not_of(" \t\r") == std::string::npos) continue;
    JsonlRow r;
    r.line = line;
    try {
      r.value = nlohmann::json::parse(row);
    } catch (const nlohmann::json::exception& e) {
      throw Error(path + ":" + std::to_string(line) + ": invalid JSON (" + e.what() + ")");
    }
    if (!r.value.is_object()) throw Error(path + ":" + std::to_string(line) + ": expected a JSON object");
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace r1
