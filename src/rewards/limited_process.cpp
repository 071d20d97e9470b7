#include "rewards/limited_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace r1 {
namespace {

constexpr int kMonitorTimedOut = 124;  // the monitor's exit status when it killed the run at the wall limit
constexpr int kInitFailed = 125;       // r1-sandbox-init could not set the sandbox up
constexpr int kChannelFd = 3;          // the run's file descriptor 3: RunResult::channel
constexpr size_t kChannelBytes = size_t(64) << 20;

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
  ::signal(SIGPIPE, SIG_DFL);  // r1 ignores it; the program gets the default it would get anywhere
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

}  // namespace

std::string find_program(const char* name) {
  for (const char* dir : {"/usr/bin", "/bin", "/usr/local/bin"}) {
    const std::string p = std::string(dir) + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// Runs prepared argv with limits; collects stdout/stderr up to output_bytes and the channel (file
// descriptor 3) when asked; the monitor ends the run at the wall limit, r1 a few seconds later
// should the monitor itself hang.
RunResult run_limited(const std::vector<std::string>& argv, const std::vector<std::string>& env, const SandboxLimits& l,
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
  return run_limited(full, env, l, 0, fs::current_path().string(), stdin_text, false);
}

}  // namespace r1
