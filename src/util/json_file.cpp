#include "util/json_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace r1 {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(path + ": invalid JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  }
}

void write_fully(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(path + ": write failed (" + std::strerror(errno) + ")");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void write_text_file(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path + ": cannot create (" + std::strerror(errno) + ")");
  try {
    write_fully(fd, text.data(), text.size(), path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) throw Error(path + ": fsync/close failed (" + std::strerror(errno) + ")");
}

void link_tree(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  if (fs::is_directory(from)) {
    fs::create_directories(to);
    for (const auto& e : fs::directory_iterator(from)) link_tree(e.path().string(), (fs::path(to) / e.path().filename()).string());
    return;
  }
  std::error_code ec;
  fs::create_hard_link(from, to, ec);
  if (ec) fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

void keep_jsonl_steps_up_to(const std::string& path, int64_t step) {
  if (!std::filesystem::exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).value("step", int64_t(-1)) <= step) kept += line + "\n";
    } catch (const nlohmann::json::exception&) {  // a line cut by a crash
    }
  }
  in.close();
  write_text_file(path, kept);
}

}  // namespace r1
