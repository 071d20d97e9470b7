// Small file helpers: JSON files (config.json, index files), whole-file writes, linked copies.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace r1 {

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
