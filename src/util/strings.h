// Small string predicates the standard library gains only in C++20.
#pragma once
#include <string>

namespace r1 {

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace r1
