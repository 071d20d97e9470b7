// Small file helpers: JSON files (config.json, index files), whole-file writes, linked copies.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace r1 {

// A typed field of a JSON object, with an error that names `origin` (the file) and the key.
template <typename T>
T json_field(const nlohmann::json& j, const std::string& key, const std::string& origin) {
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(origin + ": field '" + key + "' is missing or has the wrong type (got " +
                (j.contains(key) ? j.at(key).dump() : std::string("nothing")) + ")");
  }
}

// Sets `out` from the field when it is present and not null.
template <typename T>
void json_optional_field(const nlohmann::json& j, const std::string& key, const std::string& origin, T& out) {
  if (j.contains(key) && !j.at(key).is_null()) out = json_field<T>(j, key, origin);
}

// Parses a JSON file; errors name the file and the parser's byte position.
nlohmann::json read_json_file(const std::string& path);
std::string read_text_file(const std::string& path);
// write(2) until all `n` bytes are out (retrying short writes and EINTR); errors name `path`.
void write_fully(int fd, const void* data, size_t n, const std::string& path);
// Writes and fsyncs, so a following rename publishes complete contents.
void write_text_file(const std::string& path, const std::string& text);
// Recreates `from` (a file or a directory tree) at `to` with hard links to the same files, so a
// checkpoint's gigabytes are not copied; falls back to copying where the file system refuses
// links. Only for files that are replaced (new file + rename), never rewritten in place.
// Keeps only the lines of a JSONL log whose "step" is at most `step` (and drops a line cut by a
// crash): a resumed run rewrites the steps after its checkpoint. Nothing happens if it is missing.
void keep_jsonl_steps_up_to(const std::string& path, int64_t step);
void link_tree(const std::string& from, const std::string& to);

}  // namespace r1
