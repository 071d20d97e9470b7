// Runs untrusted programs (model-written Python, and C++ via g++) against tests. Generated code
// is hostile: it only ever runs here.
//
// Each run gets a fresh scratch directory and, when bubblewrap works on this machine, a
// namespace sandbox: no network, its own PID/IPC/UTS namespaces, read-only /usr /bin /lib, a
// private /tmp and /proc, the scratch directory as the only writable place, and nothing of /home,
// /root, /etc or the project. Inside or not, the program runs under rlimits (CPU seconds, address
// space, file size, processes, open files), as an unprivileged uid of its own when r1 runs as root, in its own
// session, and the whole process group is killed at the wall-clock limit. If bubblewrap cannot
// create namespaces here, the sandbox says so once on stderr and runs with the rlimits alone.
// Torch-free.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace r1 {

struct SandboxLimits {
  double cpu_seconds = 5;
  double wall_seconds = 10;
  size_t memory_bytes = size_t(1) << 30;  // address space
  size_t file_bytes = size_t(16) << 20;   // largest file it may write
  int processes = 32;
  int open_files = 64;
  size_t output_bytes = size_t(1) << 20;  // stdout/stderr kept (the rest is dropped)
};

struct RunResult {
  // "ok" (exit 0), "failed" (non-zero exit), "timeout" (wall or CPU limit), "crashed" (killed by a
  // signal), "error" (the sandbox itself could not run it)
  std::string status;
  int exit_code = -1;
  int signal = 0;
  std::string out, err;
  double seconds = 0;
};

// One test of a program: "passed", "failed" (wrong answer or assertion), "timeout", "crashed",
// "error" (exception, syntax or compile error).
struct TestOutcome {
  std::string verdict;
  std::string detail;
};

struct TestReport {
  std::vector<TestOutcome> tests;
  double pass_fraction() const;
};

struct IoCase {
  std::string input, expected_output;
};

// Runs a trusted command (a user's external reward script) with a wall-clock limit and the
// output limit, without isolation. stdin_text goes to its standard input.
RunResult run_command(const std::vector<std::string>& argv, const std::string& stdin_text, double wall_seconds);

class CodeSandbox {
 public:
  explicit CodeSandbox(SandboxLimits limits = {}, int max_parallel = 0 /* 0 = cores */);

  bool isolated() const { return use_bwrap_; }  // false: rlimits only
  const SandboxLimits& limits() const { return limits_; }

  // Runs `argv` inside a fresh scratch directory holding `files` (name -> content).
  RunResult run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& files,
                const std::string& stdin_text = "") const;

  // HumanEval: prompt + completion, then the test code and check(entry_point); one test.
  TestReport run_humaneval(const std::string& prompt, const std::string& completion, const std::string& test,
                           const std::string& entry_point) const;
  // A program (language "python" or "cpp") against stdin/stdout cases (output compared with
  // trailing whitespace of each line ignored).
  TestReport run_io(const std::string& language, const std::string& source, const std::vector<IoCase>& cases) const;

  // Runs jobs on up to max_parallel threads; results in order.
  std::vector<TestReport> run_many(const std::vector<std::function<TestReport()>>& jobs) const;

 private:
  std::string make_scratch(const std::map<std::string, std::string>& files) const;  // "" on failure
  RunResult run_in(const std::string& scratch, const std::vector<std::string>& argv, const std::string& stdin_text,
                   const SandboxLimits& limits) const;
  SandboxLimits limits_;
  int max_parallel_;
  bool use_bwrap_ = false;
};

}  // namespace r1
