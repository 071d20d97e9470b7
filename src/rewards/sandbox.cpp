#include "rewards/sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

#include "rewards/code_judge_py.h"  // kCodeJudgePy, generated from src/rewards/code_judge.py
#include "util/error.h"
#include "util/helper_programs.h"

namespace fs = std::filesystem;

namespace r1 {
namespace {

constexpr uid_t kNobody = 65534;
constexpr int kMonitorTimedOut = 124;  // the monitor's exit status when it killed the run at the wall limit
constexpr int kInitFailed = 125;       // r1-sandbox-init could not set the sandbox up
constexpr int kChannelFd = 3;          // the run's file descriptor 3: RunResult::channel
constexpr size_t kChannelBytes = size_t(64) << 20;

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

// bubblewrap: R1_BWRAP if set ("none": do not use it), else bwrap from the system directories.
std::string bubblewrap_path() {
  if (const char* env = std::getenv("R1_BWRAP")) return std::string(env) == "none" ? "" : env;
  return find_program("bwrap");
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

struct LinuxDirent64 {  // what getdents64 writes
  uint64_t ino;
  int64_t off;
  unsigned short reclen;
  unsigned char type;
  char name[1];
};

// The pids of the processes whose parent is `parent`, read from /proc with raw system calls (this
// runs in a child forked from a threaded process: no allocation).
int children_of(pid_t parent, pid_t* out, int capacity) {
  const int dir = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return 0;
  int found = 0;
  char entries[8192];
  for (long n; (n = ::syscall(SYS_getdents64, dir, entries, sizeof entries)) > 0;) {
    for (long at = 0; at < n;) {
      const auto* e = reinterpret_cast<const LinuxDirent64*>(entries + at);
      at += e->reclen;
      pid_t pid = 0;
      for (const char* c = e->name; *c; ++c) pid = *c >= '0' && *c <= '9' ? pid * 10 + (*c - '0') : -1;
      if (pid <= 0 || found >= capacity) continue;
      char path[64] = "/proc/", stat[512];
      int len = 6;
      for (const char* c = e->name; *c && len < 40; ++c) path[len++] = *c;
      std::memcpy(path + len, "/stat", 6);
      const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      const ssize_t got = ::read(fd, stat, sizeof stat - 1);
      ::close(fd);
      if (got <= 0) continue;
      stat[got] = 0;
      // "pid (comm) state ppid ...": comm may hold spaces and ')', so read after the last ')'.
      const char* close = nullptr;
      for (ssize_t i = 0; i < got; ++i)
        if (stat[i] == ')') close = stat + i;
      if (!close || close[1] != ' ' || close[2] == 0 || close[3] != ' ') continue;
      pid_t ppid = 0;
      for (const char* c = close + 4; *c >= '0' && *c <= '9'; ++c) ppid = ppid * 10 + (*c - '0');
      if (ppid == parent) out[found++] = pid;
    }
  }
  ::close(dir);
  return found;
}

// Kills every descendant of this process (its subreaper): children first, then the orphans they
// leave, which become its children, until none is left. A process that called setsid() is no
// exception. RLIMIT_NPROC bounds how many there can be.
void kill_descendants() {
  pid_t children[1024];
  for (int round = 0; round < 10000; ++round) {
    const int n = children_of(::getpid(), children, 1024);
    for (int i = 0; i < n; ++i) ::kill(children[i], SIGKILL);
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    if (n == 0 && ::waitpid(-1, nullptr, WNOHANG) < 0) return;
    const timespec pause{0, 1'000'000};
    ::nanosleep(&pause, nullptr);
  }
}

// The forked child: a monitor that is the subreaper of everything the program starts (this
// machine's pid 1 may never reap orphans, and zombies of the sandbox's uid would count against its
// process limit). It runs the program, enforces the wall-clock limit itself, and then kills every
// descendant (a process that left the session with setsid() included: under bubblewrap they all
// share the sandbox's PID namespace and die with it; without, kill_descendants finds them). It exits
// with the program's status (a signal as 128 + signal), or kMonitorTimedOut at the wall limit.
[[noreturn]] void exec_child(const ChildSetup& setup, int in_fd, int out_fd, int err_fd, int channel_fd, char** argv,
                             char** envp) {
  ::setsid();
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // r1 itself killed: take the run down with it
  ::dup2(in_fd, 0);
  ::dup2(out_fd, 1);
  ::dup2(err_fd, 2);
  if (channel_fd >= 0) ::dup2(channel_fd, kChannelFd);
  for (int fd = channel_fd >= 0 ? kChannelFd + 1 : kChannelFd; fd < 1024; ++fd) ::close(fd);
  if (::chdir(setup.workdir) != 0) ::_exit(126);
  sigset_t child_exits;
  sigemptyset(&child_exits);
  sigaddset(&child_exits, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &child_exits, nullptr);
  const pid_t program = ::fork();
  if (program < 0) ::_exit(126);
  if (program == 0) {
    ::sigprocmask(SIG_UNBLOCK, &child_exits, nullptr);
    exec_program(setup, argv, envp);
  }
  timespec start{};
  ::clock_gettime(CLOCK_MONOTONIC, &start);
  int code = 126;
  bool running = true;
  while (running) {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    const double left = setup.limits->wall_seconds - ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) * 1e-9);
    if (left <= 0) {
      code = kMonitorTimedOut;
      break;
    }
    const timespec wait{static_cast<time_t>(left), static_cast<long>((left - std::floor(left)) * 1e9)};
    ::sigtimedwait(&child_exits, nullptr, &wait);
    for (int s = 0;;) {  // reap what exited: the program, and orphans on the way
      const pid_t done = ::waitpid(-1, &s, WNOHANG);
      if (done <= 0) break;
      if (done == program) {
        code = WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
        running = false;
      }
    }
  }
  kill_descendants();
  ::_exit(code);
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

// Runs prepared argv with limits; collects stdout/stderr up to output_bytes and the channel (file
// descriptor 3) when asked; the monitor ends the run at the wall limit, r1 a few seconds later
// should the monitor itself hang.
RunResult run_process(const std::vector<std::string>& argv, const std::vector<std::string>& env, const SandboxLimits& l,
                      uid_t run_as, const std::string& workdir, const std::string& stdin_text, bool with_channel) {
  RunResult r;
  CArgs args(argv), envs(env);
  int in[2], out[2], err[2], channel[2] = {-1, -1};
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
      (with_channel && ::pipe2(channel, O_CLOEXEC) != 0)) {
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
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1], channel[0], channel[1]})
      if (fd >= 0) ::close(fd);
    return r;
  }
  if (pid == 0) exec_child(setup, in[0], out[1], err[1], channel[1], args.pointers.data(), envs.pointers.data());
  for (int fd : {in[0], out[1], err[1], channel[1]})
    if (fd >= 0) ::close(fd);
  size_t written = 0;
  if (stdin_text.empty()) {
    ::close(in[1]);
    in[1] = -1;
  } else {
    ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  }
  int readers[3] = {out[0], err[0], channel[0]};
  std::string* sinks[3] = {&r.out, &r.err, &r.channel};
  const size_t caps[3] = {l.output_bytes, l.output_bytes, kChannelBytes};
  const double backstop = l.wall_seconds + 5;  // the monitor kills at the wall limit; this only if it hangs
  char buffer[65536];
  for (;;) {
    const int open_readers = (readers[0] >= 0) + (readers[1] >= 0) + (readers[2] >= 0);
    if (open_readers == 0) break;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > backstop) {
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd fds[4] = {{readers[0], POLLIN, 0}, {readers[1], POLLIN, 0}, {readers[2], POLLIN, 0}, {in[1], POLLOUT, 0}};
    const int n = ::poll(fds, 4, 50);
    if (n < 0 && errno != EINTR) break;
    for (int k = 0; k < 3; ++k) {
      if (readers[k] < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t got = ::read(readers[k], buffer, sizeof buffer);
      if (got > 0) {
        std::string& sink = *sinks[k];
        if (sink.size() < caps[k]) sink.append(buffer, std::min<size_t>(static_cast<size_t>(got), caps[k] - sink.size()));
      } else if (got == 0 || errno != EINTR) {
        ::close(readers[k]);
        readers[k] = -1;
      }
    }
    if (in[1] >= 0 && (fds[3].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t put = ::write(in[1], stdin_text.data() + written, stdin_text.size() - written);
      if (put > 0) written += static_cast<size_t>(put);
      if (put < 0 || written == stdin_text.size()) {
        ::close(in[1]);
        in[1] = -1;
      }
    }
  }
  for (int fd : {in[1], readers[0], readers[1], readers[2]})
    if (fd >= 0) ::close(fd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
    // The monitor (and bwrap) report a program killed by a signal as exit 128 + signal.
    if (r.exit_code > 128 && r.exit_code < 160) r.signal = r.exit_code - 128;
  }
  const bool timed_out = (r.exit_code == kMonitorTimedOut && r.seconds >= l.wall_seconds) || r.seconds > backstop;
  if (timed_out || r.signal == SIGXCPU) r.status = "timeout";
  else if (r.signal != 0) r.status = "crashed";
  else if (r.exit_code == 0) r.status = "ok";
  else if (r.exit_code == 126 || r.exit_code == 127 || r.exit_code == kInitFailed) r.status = "error";
  else r.status = "failed";
  return r;
}

bool bubblewrap_works(const std::string& bwrap, uid_t run_as) {
  if (bwrap.empty() || ::access(bwrap.c_str(), X_OK) != 0) return false;
  const std::string dir = fs::temp_directory_path().string();
  SandboxLimits l;
  l.wall_seconds = 10;
  const RunResult r = run_process({bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--ro-bind", "/",
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
  return run_process(full, env, limits, ::geteuid() == 0 ? sandbox_uid(scratch) : 0, scratch, stdin_text, true);
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
