// math_equal: each check in a worker process (r1-math-worker, math_worker.cpp), so that the time
// limit is enforced (the worker is killed) rather than polled, memory is bounded (the worker's
// RLIMIT_AS), and checks run in parallel (GiNaC is not thread-safe, processes do not share it).
//
// Messages on a socket pair, little-endian lengths:
//   request:  u32 answer size, answer, u32 reference size, reference, u64 max_chars,
//             f64 rel_tolerance, f64 time_limit_s, u64 memory_bytes
//   reply:    u8 equal, u32 reason size, reason
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "rewards/math_verifier.h"
#include "util/error.h"
#include "util/helper_programs.h"

extern char** environ;

namespace r1 {
namespace {

using Clock = std::chrono::steady_clock;

struct Worker {
  pid_t pid = -1;
  int socket = -1;
};

// The resident-set peak of a live worker (VmHWM), in bytes; 0 if unreadable.
size_t peak_rss(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return static_cast<size_t>(std::stoull(line.substr(6))) * 1024;
  return 0;
}

void put_u32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
void put_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
void put_f64(std::string& out, double v) { out.append(reinterpret_cast<const char*>(&v), 8); }

class WorkerPool {
 public:
  static WorkerPool& instance() {
    static WorkerPool pool;
    return pool;
  }

  MathVerdict check(std::string_view answer, std::string_view reference, const MathVerifyOptions& o) {
    ++checks_;
    // Inputs over the limit never reach a worker.
    if (answer.size() > o.max_chars || reference.size() > o.max_chars) return {false, "too long"};
    std::string request;
    put_u32(request, static_cast<uint32_t>(answer.size()));
    request += answer;
    put_u32(request, static_cast<uint32_t>(reference.size()));
    request += reference;
    put_u64(request, o.max_chars);
    put_f64(request, o.rel_tolerance);
    put_f64(request, o.time_limit_s);
    put_u64(request, o.memory_bytes);
    const auto deadline = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(o.time_limit_s * 1e6));
    Worker w = acquire();
    std::string reply;
    const Outcome outcome = exchange(w, request, deadline, reply);
    if (outcome != Outcome::kAnswered) {
      discard(w);
      if (outcome == Outcome::kTimedOut) {
        ++killed_;
        return {false, "too large: time limit"};
      }
      ++failures_;
      return {false, "too large: the check ran out of memory or failed"};
    }
    release(w);
    if (reply.size() < 5) return {false, "too large: the check failed"};
    uint32_t n = 0;
    std::memcpy(&n, reply.data() + 1, 4);
    return {reply[0] != 0, reply.substr(5, n)};
  }

  MathCheckerStats stats() {
    MathCheckerStats s;
    s.checks = checks_;
    s.killed_at_time_limit = killed_;
    s.worker_failures = failures_;
    std::lock_guard<std::mutex> lock(mutex_);
    s.peak_worker_rss_bytes = peak_rss_of_gone_;
    for (const Worker& w : idle_) s.peak_worker_rss_bytes = std::max(s.peak_worker_rss_bytes, peak_rss(w.pid));
    return s;
  }

 private:
  enum class Outcome { kAnswered, kTimedOut, kFailed };

  WorkerPool() : max_workers_(std::max(2u, std::thread::hardware_concurrency())) {}

  Worker acquire() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      if (!idle_.empty()) {
        Worker w = idle_.back();
        idle_.pop_back();
        return w;
      }
      if (live_ < max_workers_) {
        ++live_;
        lock.unlock();
        try {
          return spawn();
        } catch (...) {
          lock.lock();
          --live_;
          cv_.notify_one();
          throw;
        }
      }
      cv_.wait(lock);
    }
  }

  void release(const Worker& w) {
    std::lock_guard<std::mutex> lock(mutex_);
    idle_.push_back(w);
    cv_.notify_one();
  }

  // A worker that timed out or failed: killed; the next check starts a fresh one. It is reaped on
  // a thread of its own, since freeing a large heap takes the kernel tens of milliseconds, which
  // the check that timed out should not wait for.
  void discard(const Worker& w) {
    const size_t rss = peak_rss(w.pid);
    ::kill(w.pid, SIGKILL);
    ::close(w.socket);
    std::thread([pid = w.pid] { ::waitpid(pid, nullptr, 0); }).detach();
    std::lock_guard<std::mutex> lock(mutex_);
    peak_rss_of_gone_ = std::max(peak_rss_of_gone_, rss);
    --live_;
    cv_.notify_one();
  }

  static Worker spawn() {
    const std::string program = helper_program("r1-math-worker", "R1_MATH_WORKER");
    int sockets[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0)
      throw Error(std::string("math checker: socketpair: ") + std::strerror(errno));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, sockets[1], 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    std::vector<char*> argv = {const_cast<char*>(program.c_str()), nullptr};
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(sockets[1]);
    if (rc != 0) {
      ::close(sockets[0]);
      throw Error("math checker: cannot start " + program + ": " + std::strerror(rc));
    }
    return {pid, sockets[0]};
  }

  // Sends the request and reads the reply before the deadline.
  static Outcome exchange(const Worker& w, const std::string& request, Clock::time_point deadline, std::string& reply) {
    for (size_t sent = 0; sent < request.size();) {
      const ssize_t n = ::send(w.socket, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return Outcome::kFailed;
      sent += static_cast<size_t>(n);
    }
    size_t need = 5;
    char buffer[4096];
    while (reply.size() < need) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return Outcome::kTimedOut;
      pollfd p{w.socket, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
      if (ready < 0 && errno != EINTR) return Outcome::kFailed;
      if (ready <= 0) continue;
      const ssize_t n = ::recv(w.socket, buffer, sizeof buffer, 0);
      if (n <= 0) return Outcome::kFailed;  // the worker died
      reply.append(buffer, static_cast<size_t>(n));
      if (reply.size() >= 5) {
        uint32_t reason = 0;
        std::memcpy(&reason, reply.data() + 1, 4);
        need = 5 + reason;
      }
    }
    return Outcome::kAnswered;
  }

  const int max_workers_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Worker> idle_;
  int live_ = 0;
  size_t peak_rss_of_gone_ = 0;
  std::atomic<int64_t> checks_{0}, killed_{0}, failures_{0};
};

}  // namespace

MathVerdict math_equal(std::string_view answer, std::string_view reference, const MathVerifyOptions& options) {
  return WorkerPool::instance().check(answer, reference, options);
}

MathCheckerStats math_checker_stats() { return WorkerPool::instance().stats(); }

}  // namespace r1
