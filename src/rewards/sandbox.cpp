#include "rewards/sandbox.h"

#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "rewards/code_judge_py.h"  // kCodeJudgePy, generated from src/rewards/code_judge.py
#include "rewards/limited_process.h"
#include "util/error.h"
#include "util/helper_programs.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

constexpr uid_t kNobody = 65534;

// When r1 runs as root, each sandbox runs as its own unprivileged uid (no passwd entry needed):
// the process limit counts per uid, so a fork bomb in one sandbox cannot starve the others.
uid_t sandbox_uid(const std::string& scratch) {
  return static_cast<uid_t>(200000 + std::hash<std::string>{}(scratch) % 50000);
}

// bubblewrap: R1_BWRAP if set ("none": do not use it), else bwrap from the system directories.
std::string bubblewrap_path() {
  if (const char* env = std::getenv("R1_BWRAP")) return std::string(env) == "none" ? "" : env;
  return find_program("bwrap");
}

// Random hex, for the judge's proof token.
std::string random_hex(size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  size_t got = 0;
  while (got < bytes) {
    const ssize_t n = ::getrandom(raw.data() + got, bytes - got, 0);
    if (n < 0 && errno != EINTR) throw Error(std::string("getrandom: ") + std::strerror(errno));
    if (n > 0) got += static_cast<size_t>(n);
  }
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : raw) hex += {digits[c >> 4], digits[c & 15]};
  return hex;
}

bool bubblewrap_works(const std::string& bwrap, uid_t run_as) {
  if (bwrap.empty() || ::access(bwrap.c_str(), X_OK) != 0) return false;
  const std::string dir = fs::temp_directory_path().string();
  SandboxLimits l;
  l.wall_seconds = 10;
  const RunResult r = run_limited({bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--ro-bind", "/",
                                   "/", "/bin/true"},
                                  {"PATH=/usr/bin:/bin"}, l, run_as, dir, "", false);
  return r.status == "ok";
}

std::string trim_lines(const std::string& s) {
  std::string out, line;
  std::istringstream in(s);
  std::vector<std::string> lines;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.pop_back();
    lines.push_back(line);
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  for (const auto& x : lines) out += x + "\n";
  return out;
}

std::string tail(const std::string& s, size_t n) { return s.size() > n ? s.substr(s.size() - n) : s; }

// The verdict of a test the judge left no proof line for.
TestOutcome unproven(const RunResult& r) {
  TestOutcome t;
  if (r.status == "timeout" || r.status == "crashed") t.verdict = r.status;
  else if (r.err.find("AssertionError") != std::string::npos) t.verdict = "failed";
  else t.verdict = "error";
  t.detail = tail(r.err.empty() ? r.out : r.err, 2000);
  if (t.detail.empty()) t.detail = "no proof that the test ran (" + r.status + ")";
  return t;
}

}  // namespace

double TestReport::pass_fraction() const {
  if (tests.empty()) return 0;
  size_t passed = 0;
  for (const auto& t : tests) passed += t.verdict == "passed";
  return static_cast<double>(passed) / static_cast<double>(tests.size());
}

CodeSandbox::CodeSandbox(SandboxLimits limits, int max_parallel, bool allow_unisolated)
    : limits_(limits), max_parallel_(max_parallel > 0 ? max_parallel : std::max(1u, std::thread::hardware_concurrency())) {
  // Whether bubblewrap works is tried once per binary (R1_BWRAP names another one, or "none").
  static std::mutex probing;
  static std::map<std::string, bool> works;
  bwrap_ = bubblewrap_path();
  {
    std::lock_guard<std::mutex> lock(probing);
    if (!works.count(bwrap_)) works[bwrap_] = bubblewrap_works(bwrap_, ::geteuid() == 0 ? kNobody : 0);
    use_bwrap_ = works[bwrap_];
  }
  init_ = helper_program("r1-sandbox-init", "R1_SANDBOX_INIT");  // throws when missing
  if (!use_bwrap_ && !allow_unisolated)
    throw Error("the code sandbox needs bubblewrap (Debian package 'bubblewrap') able to create user namespaces, and "
                "it cannot here; generated code will not run unisolated. Fix that (a container may need "
                "--security-opt seccomp=unconfined or user namespaces enabled), or pass --unsafe-no-sandbox to run "
                "it with rlimits and seccomp only");
  if (!use_bwrap_) {
    static std::once_flag warned;
    std::call_once(warned, [] {
      std::cerr << "\n*** WARNING: --unsafe-no-sandbox: bubblewrap cannot create namespaces here, and generated code "
                   "runs WITHOUT filesystem, network or process isolation (rlimits, seccomp and a monitor only). It "
                   "can read every file this user can read and use the network. ***\n\n";
    });
  }
}

std::string CodeSandbox::make_scratch(const std::map<std::string, std::string>& files) const {
  std::string tmpl = (fs::temp_directory_path() / "r1-sandbox-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) return "";
  const bool as_root = ::geteuid() == 0;
  const uid_t uid = sandbox_uid(tmpl);
  if (as_root && ::chown(tmpl.c_str(), uid, uid) != 0) ::chmod(tmpl.c_str(), 0777);
  for (const auto& [name, content] : files) {
    if (name.find('/') != std::string::npos || name.empty() || name[0] == '.') continue;
    const std::string path = tmpl + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    if (name == "prog") ::chmod(path.c_str(), 0755);  // a compiled program
    if (as_root && ::chown(path.c_str(), uid, uid) != 0) ::chmod(path.c_str(), 0666);
  }
  return tmpl;
}

RunResult CodeSandbox::run_in(const std::string& scratch, const std::vector<std::string>& argv,
                              const std::string& stdin_text, const SandboxLimits& limits) const {
  std::vector<std::string> full;
  std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"};
  const std::string& init = init_;
  if (use_bwrap_) {
    // The run's files come in read-only at /.r1/in; r1-sandbox-init copies them into a bounded
    // tmpfs at /work, unmounts /.r1/in, disables user namespaces, drops its capabilities and loads
    // the seccomp filter (the two capabilities added here are its, for those steps). The root is
    // read-only, and /dev holds the five harmless devices (bubblewrap's --dev would make the
    // tmpfs mounts fail).
    full = {bwrap_, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
            "--uid", "1000", "--gid", "1000", "--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SYS_RESOURCE",
            "--ro-bind", "/usr", "/usr", "--ro-bind-try", "/lib", "/lib", "--ro-bind-try", "/lib64", "/lib64",
            "--ro-bind-try", "/bin", "/bin", "--ro-bind-try", "/sbin", "/sbin",
            "--ro-bind-try", "/etc/alternatives", "/etc/alternatives", "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
            "--proc", "/proc", "--dev-bind", "/dev/null", "/dev/null", "--dev-bind", "/dev/zero", "/dev/zero",
            "--dev-bind", "/dev/full", "/dev/full", "--dev-bind", "/dev/random", "/dev/random",
            "--dev-bind", "/dev/urandom", "/dev/urandom", "--dir", "/tmp", "--dir", "/work",
            "--ro-bind", scratch, "/.r1/in", "--ro-bind", init, "/.r1/init", "--remount-ro", "/", "--chdir", "/",
            "--", "/.r1/init", "--mount", std::to_string(limits.disk_bytes), std::to_string(limits.disk_files),
            std::to_string(limits.disk_bytes), std::to_string(limits.disk_files), "/.r1/in", "--"};
    env.push_back("HOME=/work");
  } else {
    full = {init, "--"};
    env.push_back("HOME=" + scratch);
  }
  std::vector<std::string> program = argv;
  if (!program.empty() && program[0].find('/') == std::string::npos) {
    const std::string found = find_program(program[0].c_str());
    if (!found.empty()) program[0] = found;
  }
  full.insert(full.end(), program.begin(), program.end());
  return run_limited(full, env, limits, ::geteuid() == 0 ? sandbox_uid(scratch) : 0, scratch, stdin_text, true);
}

RunResult CodeSandbox::run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& files,
                           const std::string& stdin_text) const {
  const std::string scratch = make_scratch(files);
  if (scratch.empty()) {
    RunResult r;
    r.status = "error";
    r.err = std::string("mkdtemp: ") + std::strerror(errno);
    return r;
  }
  RunResult r = run_in(scratch, argv, stdin_text, limits_);
  std::error_code ec;
  fs::remove_all(scratch, ec);
  return r;
}

TestReport CodeSandbox::run_judge(const std::string& program, nlohmann::json payload, size_t tests) const {
  const std::string token = random_hex(16);
  payload["token"] = token;
  payload["program_file"] = "program.py";
  const RunResult r = run({"python3", "-I", "-B", "judge.py"}, {{"judge.py", kCodeJudgePy}, {"program.py", program}},
                          payload.dump());
  // Only lines "TOKEN INDEX VERDICT" with this run's token count: the judge writes them to a
  // descriptor the program never holds, after each test returns.
  TestReport report;
  report.tests.assign(tests, unproven(r));
  std::istringstream lines(r.channel);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string seen, verdict;
    size_t index = 0;
    if (!(fields >> seen >> index >> verdict) || seen != token || index >= tests) continue;
    if (verdict != "passed" && verdict != "failed" && verdict != "error") continue;
    report.tests[index].verdict = verdict;
    report.tests[index].detail = verdict == "passed" ? "" : tail(r.err, 2000);
  }
  return report;
}

TestReport CodeSandbox::run_humaneval(const std::string& program, const std::string& prompt, const std::string& test,
                                      const std::string& entry_point) const {
  return run_judge(program, {{"mode", "humaneval"}, {"prompt", prompt}, {"test", test}, {"entry_point", entry_point}}, 1);
}

TestReport CodeSandbox::run_asserts(const std::string& program, const std::vector<std::string>& tests,
                                    const std::string& setup) const {
  if (tests.empty()) return {};
  return run_judge(program, {{"mode", "asserts"}, {"tests", tests}, {"setup", setup}}, tests.size());
}

TestReport CodeSandbox::run_io(const std::string& language, const std::string& source, const std::vector<IoCase>& cases) const {
  TestReport report;
  auto all = [&](const std::string& verdict, const std::string& detail) {
    for (size_t i = 0; i < cases.size(); ++i) report.tests.push_back({verdict, detail});
    return report;
  };
  if (language != "python" && language != "cpp") return all("error", "unknown language " + language);
  std::map<std::string, std::string> files = {{language == "python" ? "main.py" : "main.cpp", source}};
  std::vector<std::string> command = {"python3", "-I", "-B", "main.py"};
  if (language == "cpp") {
    // Compiled in the sandbox too (the compiler reads hostile input), with more room; the binary
    // comes back through the channel and goes into each case's run.
    SandboxLimits compile = limits_;
    compile.cpu_seconds = std::max(limits_.cpu_seconds, 30.0);
    compile.wall_seconds = std::max(limits_.wall_seconds, 60.0);
    compile.memory_bytes = std::max(limits_.memory_bytes, size_t(2) << 30);
    compile.file_bytes = std::max(limits_.file_bytes, size_t(64) << 20);
    compile.disk_bytes = std::max(limits_.disk_bytes, size_t(512) << 20);
    const std::string scratch = make_scratch(files);
    if (scratch.empty()) return all("error", "cannot create a scratch directory");
    const RunResult built =
        run_in(scratch, {"/bin/sh", "-c", "g++ -O2 -std=c++17 -o prog main.cpp && cat prog >&3"}, "", compile);
    std::error_code ec;
    fs::remove_all(scratch, ec);
    if (built.status != "ok" || built.channel.empty()) return all("error", "compile: " + built.err.substr(0, 2000));
    files = {{"prog", built.channel}};
    command = {"./prog"};
  }
  for (const auto& c : cases) {
    const RunResult r = run(command, files, c.input);
    TestOutcome t;
    if (r.status == "ok") t.verdict = trim_lines(r.out) == trim_lines(c.expected_output) ? "passed" : "failed";
    else if (r.status == "failed") t.verdict = "error";
    else t.verdict = r.status;
    if (t.verdict != "passed") t.detail = (r.err.empty() ? r.out : r.err).substr(0, 2000);
    report.tests.push_back(t);
  }
  return report;
}

std::vector<TestReport> CodeSandbox::run_many(const std::vector<std::function<TestReport()>>& jobs) const {
  std::vector<TestReport> results(jobs.size());
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  const int n = std::min<int>(max_parallel_, static_cast<int>(jobs.size()));
  for (int t = 0; t < n; ++t)
    threads.emplace_back([&] {
      for (size_t i = next++; i < jobs.size(); i = next++) results[i] = jobs[i]();
    });
  for (auto& t : threads) t.join();
  return results;
}

}  // namespace r1
