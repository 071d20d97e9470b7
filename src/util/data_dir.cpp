#include "util/data_dir.h"

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "util/error.h"

#ifndef R1_INSTALL_DATA_FROM_BIN
#define R1_INSTALL_DATA_FROM_BIN "../share/r1/data"
#endif

namespace fs = std::filesystem;

namespace r1 {

std::string builtin_data_dir() {
  if (const char* env = std::getenv("R1_DATA_DIR"); env && *env) return env;
  std::error_code ec;
  const fs::path exe_dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
  if (ec) throw Error("cannot find the built-in data: /proc/self/exe is unreadable; set --data-dir or R1_DATA_DIR");
  // Installed (bin/r1 + share/r1/data) first, then the build tree (build/r1 + build/data).
  const std::vector<fs::path> candidates = {exe_dir / R1_INSTALL_DATA_FROM_BIN, exe_dir / "data"};
  for (const auto& dir : candidates)
    if (fs::is_directory(dir, ec)) return dir.lexically_normal().string();
  std::string looked;
  for (const auto& dir : candidates) looked += (looked.empty() ? "" : ", ") + dir.lexically_normal().string();
  throw Error("cannot find the built-in data (looked in " + looked + "): set --data-dir or R1_DATA_DIR");
}

}  // namespace r1
