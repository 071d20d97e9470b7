// Runs untrusted programs (model-written Python, and C++ via g++) against tests. Generated code
// is hostile: it only ever runs here, and a test passes only on proof that it ran.
//
// Each run gets, through bubblewrap: new user, PID, network, IPC, UTS and cgroup namespaces (no
// network; it sees only its own processes, and all of them die with it), no further user
// namespaces, read-only /usr /bin /lib, a private /proc, and two size- and file-count-bounded
// tmpfs filesystems: /tmp and the working directory /work, which holds the run's files; nothing
// of /home, /root, /etc or the project. In it, r1-sandbox-init (sandbox_init.cpp) drops every
// capability and loads a seccomp filter (no ptrace, mounts or new namespaces) before the program
// starts. Around it: rlimits (CPU seconds, address space, file size, processes, open files), an
// unprivileged uid of its own when r1 runs as root, and a monitor that kills every descendant at
// the wall-clock limit.
//
// If bubblewrap cannot create namespaces here, constructing a CodeSandbox is an error, unless the
// caller allows running without isolation (--unsafe-no-sandbox), which warns loudly. R1_BWRAP
// names the bubblewrap binary ("none": none).
// Torch-free.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace r1 {

struct SandboxLimits {
  double cpu_seconds = 5;
  double wall_seconds = 10;
  size_t memory_bytes = size_t(1) << 30;  // address space
  size_t file_bytes = size_t(16) << 20;   // largest file it may write
  int processes = 32;
  int open_files = 64;
  size_t output_bytes = size_t(1) << 20;  // stdout/stderr kept (the rest is read and dropped)
  size_t disk_bytes = size_t(64) << 20;   // /tmp and /work, each
  int disk_files = 4096;                  // files and directories in /tmp and in /work, each
};

struct RunResult {
  // "ok" (exit 0), "failed" (non-zero exit), "timeout" (wall or CPU limit), "crashed" (killed by a
  // signal), "error" (the sandbox itself could not run it)
  std::string status;
  int exit_code = -1;
  int signal = 0;
  std::string out, err;
  std::string channel;  // what the run wrote to file descriptor 3 (the judge's proof, a compiled binary)
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
  // Throws r1::Error when bubblewrap cannot isolate programs here, unless allow_unisolated (then
  // programs run under rlimits, seccomp and the monitor alone, after a warning).
  explicit CodeSandbox(SandboxLimits limits = {}, int max_parallel = 0 /* 0 = cores */, bool allow_unisolated = false);

  bool isolated() const { return use_bwrap_; }
  const SandboxLimits& limits() const { return limits_; }

  // Runs `argv` inside a fresh working directory holding `files` (name -> content).
  RunResult run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& files,
                const std::string& stdin_text = "") const;

  // HumanEval: `program` (the prompt + completion, or a completion that defines the function
  // itself) against `test`'s check(entry_point), which runs in the judge with `prompt` (the
  // problem's own code: helpers such as encode_cyclic). One test.
  TestReport run_humaneval(const std::string& program, const std::string& prompt, const std::string& test,
                           const std::string& entry_point) const;
  // A list of assert statements (MBPP style), each one test, calling the functions `program`
  // defines; `setup` runs first on the tests' side.
  TestReport run_asserts(const std::string& program, const std::vector<std::string>& tests,
                         const std::string& setup = "") const;
  // A program (language "python" or "cpp") against stdin/stdout cases (output compared with
  // trailing whitespace of each line ignored).
  TestReport run_io(const std::string& language, const std::string& source, const std::vector<IoCase>& cases) const;

  // Runs jobs on up to max_parallel threads; results in order.
  std::vector<TestReport> run_many(const std::vector<std::function<TestReport()>>& jobs) const;

 private:
  std::string make_scratch(const std::map<std::string, std::string>& files) const;  // "" on failure
  RunResult run_in(const std::string& scratch, const std::vector<std::string>& argv, const std::string& stdin_text,
                   const SandboxLimits& limits) const;
  // The judge (code_judge.py) on `program` with `payload` (its tests); verdicts from its proof.
  TestReport run_judge(const std::string& program, nlohmann::json payload, size_t tests) const;
  SandboxLimits limits_;
  int max_parallel_;
  std::string bwrap_, init_;
  bool use_bwrap_ = false;
};

}  // namespace r1
