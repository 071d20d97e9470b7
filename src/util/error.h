// The one error type of r1: a message that names the file, line or field at fault.
// Library code throws it; the CLI prints it and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace r1 {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace r1
