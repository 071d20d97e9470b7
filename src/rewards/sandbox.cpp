#include "rewards/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;

namespace r1 {
namespace {

constexpr uid_t kNobody = 65534;

// When r1 runs as root, each sandbox runs as its own unprivileged uid (no passwd entry needed):
// the process limit counts per uid, so a fork bomb in one sandbox cannot starve the others.
uid_t sandbox_uid(const std::string& scratch) {
  return static_cast<uid_t>(200000 + std::hash<std::string>{}(scratch) % 50000);
}

std::string find_program(const char* name) {
  for (const char* dir : {"/usr/bin", "/bin", "/usr/local/bin"}) {
    const std::string p = std::string(dir) + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// argv/envp arrays built before fork (the child may only call async-signal-safe functions).
struct CArgs {
  std::vector<std::string> strings;
  std::vector<char*> pointers;
  explicit CArgs(std::vector<std::string> s) : strings(std::move(s)) {
    for (auto& x : strings) pointers.push_back(x.data());
    pointers.push_back(nullptr);
  }
};

struct ChildSetup {
  const SandboxLimits* limits;
  uid_t run_as;  // 0: keep the caller's uid
  const char* workdir;
};

[[noreturn]] void exec_program(const ChildSetup& setup, char** argv, char** envp) {
  const SandboxLimits& l = *setup.limits;
  auto limit = [](int resource, rlim_t soft, rlim_t hard) {
    struct rlimit r{soft, hard};
    ::setrlimit(resource, &r);
  };
  const rlim_t cpu = static_cast<rlim_t>(std::ceil(l.cpu_seconds));
  limit(RLIMIT_CPU, cpu, cpu + 1);
  limit(RLIMIT_AS, l.memory_bytes, l.memory_bytes);
  limit(RLIMIT_FSIZE, l.file_bytes, l.file_bytes);
  limit(RLIMIT_NOFILE, static_cast<rlim_t>(l.open_files), static_cast<rlim_t>(l.open_files));
  limit(RLIMIT_CORE, 0, 0);
  if (setup.run_as != 0) {
    // Root ignores RLIMIT_NPROC and may write anywhere: run unprivileged instead.
    if (::setgroups(0, nullptr) != 0 || ::setgid(setup.run_as) != 0 || ::setuid(setup.run_as) != 0) ::_exit(126);
  }
  limit(RLIMIT_NPROC, static_cast<rlim_t>(l.processes), static_cast<rlim_t>(l.processes));
  ::execve(argv[0], argv, envp);
  ::_exit(127);
}

// The forked child: a monitor that is the subreaper of everything the program starts (this
// machine's pid 1 may never reap orphans, and zombies of user nobody would count against its
// process limit), runs the program in its own process group, and exits with its status (a
// signal as 128 + signal).
[[noreturn]] void exec_child(const ChildSetup& setup, int in_fd, int out_fd, int err_fd, char** argv, char** envp) {
  ::setsid();  // its own process group: the wall-clock kill takes every process it started
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  ::dup2(in_fd, 0);
  ::dup2(out_fd, 1);
  ::dup2(err_fd, 2);
  for (int fd = 3; fd < 1024; ++fd) ::close(fd);
  if (::chdir(setup.workdir) != 0) ::_exit(126);
  const pid_t program = ::fork();
  if (program < 0) ::_exit(126);
  if (program == 0) exec_program(setup, argv, envp);
  int code = 126;
  for (;;) {  // until the program exits (orphans it leaves are reaped on the way)
    int s = 0;
    const pid_t done = ::waitpid(-1, &s, 0);
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) break;
    if (done == program) {
      code = WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
      break;
    }
  }
  // Reap what is still exiting (with bubblewrap, the namespace's processes die with it); a
  // process that lingers is killed with this group by the caller.
  for (int i = 0; i < 40; ++i) {
    const pid_t done = ::waitpid(-1, nullptr, WNOHANG);
    if (done < 0) break;
    if (done == 0) {
      const timespec pause{0, 5'000'000};
      ::nanosleep(&pause, nullptr);
    }
  }
  ::_exit(code);
}

// Runs prepared argv with limits; collects output up to output_bytes; kills the group at the wall limit.
RunResult run_process(const std::vector<std::string>& argv, const std::vector<std::string>& env, const SandboxLimits& l,
                      uid_t run_as, const std::string& workdir, const std::string& stdin_text, bool via_bwrap) {
  RunResult r;
  CArgs args(argv), envs(env);
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    r.status = "error";
    r.err = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  const ChildSetup setup{&l, run_as, workdir.c_str()};
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) {
    r.status = "error";
    r.err = std::string("fork: ") + std::strerror(errno);
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) ::close(fd);
    return r;
  }
  if (pid == 0) exec_child(setup, in[0], out[1], err[1], args.pointers.data(), envs.pointers.data());
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  size_t written = 0;
  if (stdin_text.empty()) {
    ::close(in[1]);
    in[1] = -1;
  } else {
    ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  }
  bool timed_out = false;
  int open_pipes = 2;
  char buffer[65536];
  while (open_pipes > 0) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (elapsed > l.wall_seconds) {
      timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
    const int n = ::poll(fds, in[1] >= 0 ? 3 : 2, 50);
    if (n < 0 && errno != EINTR) break;
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t got = ::read(fds[k].fd, buffer, sizeof buffer);
      std::string& sink = k == 0 ? r.out : r.err;
      if (got > 0) {
        if (sink.size() < l.output_bytes) sink.append(buffer, std::min<size_t>(got, l.output_bytes - sink.size()));
      } else {
        ::close(fds[k].fd);
        (k == 0 ? out[0] : err[0]) = -1;
        --open_pipes;
      }
    }
    if (in[1] >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t put = ::write(in[1], stdin_text.data() + written, stdin_text.size() - written);
      if (put > 0) written += static_cast<size_t>(put);
      if (put < 0 || written == stdin_text.size()) {
        ::close(in[1]);
        in[1] = -1;
      }
    }
  }
  for (int fd : {in[1], out[0], err[0]})
    if (fd >= 0) ::close(fd);
  // The main process may have exited while children it spawned live on: end them too.
  ::kill(-pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
    // The monitor (and bwrap) report a program killed by a signal as exit 128 + signal.
    if (r.exit_code > 128 && r.exit_code < 160) r.signal = r.exit_code - 128;
  }
  if (timed_out || r.signal == SIGXCPU) r.status = "timeout";
  else if (r.signal != 0) r.status = "crashed";
  else if (r.exit_code == 0) r.status = "ok";
  else if (r.exit_code == 126 || r.exit_code == 127) r.status = "error";
  else r.status = "failed";
  return r;
}

bool bubblewrap_works(const std::string& bwrap, uid_t run_as) {
  if (bwrap.empty()) return false;
  const std::string dir = fs::temp_directory_path().string();
  SandboxLimits l;
  l.wall_seconds = 10;
  const RunResult r = run_process({bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "/bin/true"},
                                  {"PATH=/usr/bin:/bin"}, l, run_as, dir, "", true);
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

}  // namespace

RunResult run_command(const std::vector<std::string>& argv, const std::string& stdin_text, double wall_seconds) {
  SandboxLimits l;
  l.wall_seconds = wall_seconds;
  l.cpu_seconds = 1e6;
  l.memory_bytes = RLIM_INFINITY;
  l.file_bytes = RLIM_INFINITY;
  l.processes = 1 << 20;
  l.open_files = 4096;
  std::vector<std::string> full = argv;
  if (!full.empty() && full[0].find('/') == std::string::npos) {
    const std::string found = find_program(full[0].c_str());
    if (!found.empty()) full[0] = found;
  }
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  return run_process(full, env, l, 0, fs::current_path().string(), stdin_text, false);
}

double TestReport::pass_fraction() const {
  if (tests.empty()) return 0;
  size_t passed = 0;
  for (const auto& t : tests) passed += t.verdict == "passed";
  return static_cast<double>(passed) / static_cast<double>(tests.size());
}

CodeSandbox::CodeSandbox(SandboxLimits limits, int max_parallel)
    : limits_(limits), max_parallel_(max_parallel > 0 ? max_parallel : std::max(1u, std::thread::hardware_concurrency())) {
  static std::once_flag checked;
  static bool works = false;
  std::call_once(checked, [] {
    works = bubblewrap_works(find_program("bwrap"), ::geteuid() == 0 ? kNobody : 0);
    if (!works)
      std::cerr << "WARNING: bubblewrap cannot create namespaces on this machine (or is not installed): generated code "
                   "runs with rlimits only, without filesystem or network isolation\n";
  });
  use_bwrap_ = works;
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
    if (as_root && ::chown(path.c_str(), uid, uid) != 0) ::chmod(path.c_str(), 0666);
  }
  return tmpl;
}

RunResult CodeSandbox::run_in(const std::string& scratch, const std::vector<std::string>& argv,
                              const std::string& stdin_text, const SandboxLimits& limits) const {
  std::vector<std::string> full;
  std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"};
  if (use_bwrap_) {
    full = {find_program("bwrap"), "--unshare-all", "--die-with-parent", "--new-session",
            "--ro-bind", "/usr", "/usr", "--ro-bind-try", "/lib", "/lib", "--ro-bind-try", "/lib64", "/lib64",
            "--ro-bind-try", "/bin", "/bin", "--ro-bind-try", "/sbin", "/sbin",
            "--ro-bind-try", "/etc/alternatives", "/etc/alternatives", "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", scratch, "/work", "--chdir", "/work", "--"};
    env.push_back("HOME=/work");
  } else {
    env.push_back("HOME=" + scratch);
  }
  std::vector<std::string> program = argv;
  if (!program.empty() && program[0].find('/') == std::string::npos) {
    const std::string found = find_program(program[0].c_str());
    if (!found.empty()) program[0] = found;
  }
  full.insert(full.end(), program.begin(), program.end());
  return run_process(full, env, limits, ::geteuid() == 0 ? sandbox_uid(scratch) : 0, scratch, stdin_text, use_bwrap_);
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

TestReport CodeSandbox::run_humaneval(const std::string& prompt, const std::string& completion, const std::string& test,
                                      const std::string& entry_point) const {
  const std::string program = prompt + completion + "\n\n" + test + "\n\ncheck(" + entry_point + ")\n";
  const RunResult r = run({"python3", "-I", "-B", "main.py"}, {{"main.py", program}});
  TestOutcome t;
  if (r.status == "ok") t.verdict = "passed";
  else if (r.status == "timeout" || r.status == "crashed") t.verdict = r.status;
  else if (r.err.find("AssertionError") != std::string::npos) t.verdict = "failed";
  else t.verdict = "error";
  if (t.verdict != "passed") t.detail = r.err.size() > 2000 ? r.err.substr(r.err.size() - 2000) : r.err;
  return TestReport{{t}};
}

TestReport CodeSandbox::run_io(const std::string& language, const std::string& source, const std::vector<IoCase>& cases) const {
  TestReport report;
  auto all = [&](const std::string& verdict, const std::string& detail) {
    for (size_t i = 0; i < cases.size(); ++i) report.tests.push_back({verdict, detail});
    return report;
  };
  if (language != "python" && language != "cpp") return all("error", "unknown language " + language);
  const std::string file = language == "python" ? "main.py" : "main.cpp";
  const std::string scratch = make_scratch({{file, source}});
  if (scratch.empty()) return all("error", "cannot create a scratch directory");
  std::vector<std::string> command = {"python3", "-I", "-B", "main.py"};
  if (language == "cpp") {
    // Compiled in the sandbox too (the compiler reads hostile input), with more room.
    SandboxLimits compile = limits_;
    compile.cpu_seconds = std::max(limits_.cpu_seconds, 30.0);
    compile.wall_seconds = std::max(limits_.wall_seconds, 60.0);
    compile.memory_bytes = std::max(limits_.memory_bytes, size_t(2) << 30);
    compile.file_bytes = std::max(limits_.file_bytes, size_t(64) << 20);
    const RunResult built = run_in(scratch, {"g++", "-O2", "-std=c++17", "-o", "prog", "main.cpp"}, "", compile);
    if (built.status != "ok") {
      std::error_code ec;
      fs::remove_all(scratch, ec);
      return all("error", "compile: " + built.err.substr(0, 2000));
    }
    command = {"./prog"};
  }
  for (const auto& c : cases) {
    const RunResult r = run_in(scratch, command, c.input, limits_);
    TestOutcome t;
    if (r.status == "ok") t.verdict = trim_lines(r.out) == trim_lines(c.expected_output) ? "passed" : "failed";
    else if (r.status == "failed") t.verdict = "error";
    else t.verdict = r.status;
    if (t.verdict != "passed") t.detail = (r.err.empty() ? r.out : r.err).substr(0, 2000);
    report.tests.push_back(t);
  }
  std::error_code ec;
  fs::remove_all(scratch, ec);
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
