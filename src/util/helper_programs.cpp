#include "util/helper_programs.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "util/error.h"

namespace fs = std::filesystem;

namespace r1 {

std::string helper_program(const std::string& name, const char* override_env) {
  if (const char* env = std::getenv(override_env); env && *env) return env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  const fs::path dir = exe.parent_path();
  const std::vector<fs::path> candidates = {dir / name, dir / ".." / name, dir / ".." / "libexec" / "r1" / name};
  for (const auto& p : candidates)
    if (::access(p.c_str(), X_OK) == 0) return p.lexically_normal().string();
  std::string looked;
  for (const auto& p : candidates) looked += (looked.empty() ? "" : ", ") + p.lexically_normal().string();
  throw Error(name + " not found (looked in " + looked + "; it is built with r1): set " + override_env + " to its path");
}

}  // namespace r1
