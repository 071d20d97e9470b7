// splitmix64: a well-mixed 64-bit hash, so draws keyed by (seed, index) are independent of each
// other (mixture source choices, FIM cut points, GRPO rollout seeds).
#pragma once
#include <cstdint>

namespace r1 {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace r1
