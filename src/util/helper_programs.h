// The small executables r1 runs beside itself (r1-sandbox-init, r1-math-worker): built into the
// same folder as r1, installed into ../libexec/r1 beside bin/r1.
#pragma once
#include <string>

namespace r1 {

// The helper's path: the environment variable `override_env` if set, else the first of
// <dir of this binary>/NAME, <dir>/../NAME (tests and benchmarks run from build/ subfolders),
// <dir>/../libexec/r1/NAME. Throws r1::Error naming where it looked when none is executable.
std::string helper_program(const std::string& name, const char* override_env);

}  // namespace r1
