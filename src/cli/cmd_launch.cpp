// r1 launch --nproc N -- COMMAND ...: runs N copies of `r1 COMMAND ...` on this machine as the
// ranks of one data-parallel job (torchrun's environment: RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), splits the CPU cores between them, and stops the
// job as a whole: when a rank fails, the others are given a grace period to exit (they notice the
// lost peer themselves) and are then killed; SIGINT/SIGTERM are passed on to every rank (they save
// a checkpoint and exit). Several machines: run it once per machine with --nnodes/--node-rank and
// the same --master-addr/--master-port.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "util/error.h"

namespace r1::cli {
namespace {

volatile std::sig_atomic_t g_forward_signal = 0;
extern "C" void remember_signal(int sig) { g_forward_signal = sig; }

// A TCP port nobody listens on now (the kernel picks it), for a single-machine job.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw Error(std::string("cannot find a free TCP port: ") + std::strerror(errno));
  ::close(fd);
  return ntohs(addr.sin_port);
}

struct LaunchArgs {
  int nproc = 1, nnodes = 1, node_rank = 0, master_port = 0;
  double grace_s = 30;
  std::string master_addr = "127.0.0.1";
  std::vector<std::string> command;
};

int launch(const LaunchArgs& a) {
  if (a.command.empty()) throw Error("r1 launch: give the command after --, e.g. r1 launch --nproc 2 -- pretrain ...");
  if (a.node_rank >= a.nnodes) throw Error("--node-rank must be below --nnodes");
  if (a.nnodes > 1 && a.master_port == 0) throw Error("--nnodes > 1: give --master-addr and --master-port of node 0");
  const int port = a.master_port > 0 ? a.master_port : free_port();
  const int world = a.nproc * a.nnodes;
  // Split the cores between the local ranks unless the user chose.
  const int threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / a.nproc);
  const bool set_threads = std::getenv("OMP_NUM_THREADS") == nullptr;

  std::signal(SIGINT, remember_signal);
  std::signal(SIGTERM, remember_signal);
  std::vector<pid_t> pids;
  for (int local = 0; local < a.nproc; ++local) {
    const pid_t pid = ::fork();
    if (pid < 0) throw Error(std::string("fork failed: ") + std::strerror(errno));
    if (pid == 0) {
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      const int rank = a.node_rank * a.nproc + local;
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(local).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(a.nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", a.master_addr.c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      if (set_threads) ::setenv("OMP_NUM_THREADS", std::to_string(threads).c_str(), 1);
      std::vector<char*> argv{const_cast<char*>("r1")};
      for (const auto& arg : a.command) argv.push_back(const_cast<char*>(arg.c_str()));
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::cerr << "r1 launch: cannot run /proc/self/exe: " << std::strerror(errno) << "\n";
      ::_exit(127);
    }
    pids.push_back(pid);
  }

  // Wait for every rank. The first failure decides the exit code; after it, the survivors have
  // grace_s to exit on their own before they are killed.
  int exit_code = 0, alive = a.nproc;
  bool failing = false;  // a rank failed at failed_at; the others get grace_s to exit
  auto failed_at = std::chrono::steady_clock::now();
  while (alive > 0) {
    if (g_forward_signal) {
      for (pid_t pid : pids)
        if (pid > 0) ::kill(pid, g_forward_signal);
      g_forward_signal = 0;
    }
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      for (size_t i = 0; i < pids.size(); ++i) {
        if (pids[i] != done) continue;
        pids[i] = -1;
        --alive;
        const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (code != 0 && exit_code == 0) {
          exit_code = code;
          failing = true;
          failed_at = std::chrono::steady_clock::now();
          std::cerr << "r1 launch: local rank " << i << " (rank " << a.node_rank * a.nproc + i << ") "
                    << (WIFEXITED(status) ? "exited with status " + std::to_string(code)
                                          : std::string("was killed by signal ") + strsignal(WTERMSIG(status)))
                    << "; stopping the job\n";
        }
      }
      continue;
    }
    if (failing && std::chrono::steady_clock::now() - failed_at > std::chrono::duration<double>(a.grace_s)) {
      for (pid_t pid : pids)
        if (pid > 0) ::kill(pid, SIGKILL);
      failing = false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return exit_code;
}

}  // namespace

void add_launch_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("launch", "run a command as N data-parallel processes: r1 launch --nproc 2 -- pretrain ...");
  auto a = std::make_shared<LaunchArgs>();
  cmd->add_option("--nproc", a->nproc, "processes on this machine")->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("--nnodes", a->nnodes, "machines in the job")->capture_default_str()->check(CLI::Range(1, 65536));
  cmd->add_option("--node-rank", a->node_rank, "this machine's index (0 holds the rendezvous)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--master-addr", a->master_addr, "address of node 0")->capture_default_str();
  cmd->add_option("--master-port", a->master_port, "TCP port on node 0 (default: a free one, single machine only)")
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--grace", a->grace_s, "seconds the other ranks get to exit after one fails")->capture_default_str();
  cmd->add_option("command", a->command, "the r1 command and its flags, after --");
  cmd->callback([a] {
    const int code = launch(*a);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace r1::cli
