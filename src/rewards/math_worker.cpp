// r1-math-worker: runs math checks for r1's math_equal (math_check_pool.cpp), one at a time, on
// the socket at file descriptor 0, until r1 closes it. Each check runs under the request's
// address-space limit; running out of memory answers "too large" (or kills the worker, which r1
// then replaces). Plain C++ on GiNaC, no torch: a small separate executable.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <string>

#include "rewards/math_verifier.h"

namespace {

bool read_exactly(void* out, size_t n) {
  auto* p = static_cast<char*>(out);
  while (n > 0) {
    const ssize_t got = ::read(0, p, n);
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

bool read_string(std::string& out) {
  uint32_t n = 0;
  if (!read_exactly(&n, 4) || n > (64u << 20)) return false;
  out.resize(n);
  return read_exactly(out.data(), n);
}

bool reply(const r1::MathVerdict& v) {
  std::string out(1, v.equal ? 1 : 0);
  const uint32_t n = static_cast<uint32_t>(v.reason.size());
  out.append(reinterpret_cast<const char*>(&n), 4);
  out += v.reason;
  for (size_t sent = 0; sent < out.size();) {
    const ssize_t put = ::write(0, out.data() + sent, out.size() - sent);
    if (put <= 0) return false;
    sent += static_cast<size_t>(put);
  }
  return true;
}

}  // namespace

int main() {
  for (;;) {
    std::string answer, reference;
    uint64_t max_chars = 0, memory_bytes = 0;
    r1::MathVerifyOptions o;
    if (!read_string(answer) || !read_string(reference) || !read_exactly(&max_chars, 8) ||
        !read_exactly(&o.rel_tolerance, 8) || !read_exactly(&o.time_limit_s, 8) || !read_exactly(&memory_bytes, 8))
      return 0;  // r1 closed the socket (or sent garbage): done
    o.max_chars = max_chars;
    o.memory_bytes = memory_bytes;
    const rlimit limit{memory_bytes, RLIM_INFINITY};
    ::setrlimit(RLIMIT_AS, &limit);
    r1::MathVerdict v;
    bool out_of_memory = false;
    try {
      v = r1::math_equal_in_process(answer, reference, o);
    } catch (const std::bad_alloc&) {
      v = {false, "too large: memory"};
      out_of_memory = true;
    } catch (const std::exception& e) {
      v = {false, std::string("error: ") + e.what()};
    }
    if (!reply(v)) return 0;
    if (out_of_memory) return 0;  // the heap may be in any state: r1 starts a fresh worker
  }
}
