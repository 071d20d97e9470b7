// The code sandbox: HumanEval's canonical solutions pass and broken ones fail; stdin/stdout cases
// in Python and C++; hostile programs are contained and reported.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>

#include "eval/tasks.h"
#include "rewards/sandbox.h"
#include "util/error.h"
#include "test_data_dir.h"

namespace r1 {
namespace {

const CodeSandbox& sandbox() {
  static CodeSandbox box;
  return box;
}

TEST(Sandbox, BubblewrapIsolatesOnThisMachine) {
  // The project's machines support unprivileged namespaces; if this fails, the sandbox fell back
  // to rlimits only (it warned) and the isolation tests below would not mean much.
  EXPECT_TRUE(sandbox().isolated());
}

TEST(Sandbox, HumanEvalCanonicalSolutionsPassAndBrokenOnesFail) {
  const auto task = load_eval_task("humaneval", testing::test_data());  // HumanEval.jsonl.gz
  std::vector<nlohmann::json> rows;
  for (const auto& item : task.items) rows.push_back(item.metadata);
  ASSERT_EQ(rows.size(), 164u);
  std::vector<std::function<TestReport()>> jobs;
  for (const auto& r : rows) {
    const std::string prompt = r["prompt"], test = r["test"], entry = r["entry_point"];
    const std::string solution = r["canonical_solution"];
    jobs.push_back([=] { return sandbox().run_humaneval(prompt + solution, prompt, test, entry); });
    jobs.push_back([=] { return sandbox().run_humaneval(prompt + "    pass\n", prompt, test, entry); });
    jobs.push_back([=] { return sandbox().run_humaneval(prompt + "    return '__wrong__'\n", prompt, test, entry); });
  }
  const auto reports = sandbox().run_many(jobs);
  int passed = 0, pass_body_failed = 0, wrong_failed = 0;
  std::string problems;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string id = rows[i]["task_id"];
    if (reports[3 * i].tests[0].verdict == "passed") ++passed;
    else problems += id + " canonical: " + reports[3 * i].tests[0].verdict + " " + reports[3 * i].tests[0].detail + "\n";
    if (reports[3 * i + 1].tests[0].verdict != "passed") ++pass_body_failed;
    else problems += id + ": a 'pass' body passed\n";
    if (reports[3 * i + 2].tests[0].verdict != "passed") ++wrong_failed;
    else problems += id + ": a wrong return passed\n";
  }
  EXPECT_EQ(passed, 164) << problems;
  EXPECT_EQ(pass_body_failed, 164) << problems;
  EXPECT_EQ(wrong_failed, 164) << problems;
}

TEST(Sandbox, StdinStdoutCasesInPythonAndCpp) {
  const std::vector<IoCase> cases = {{"1 2\n", "3\n"}, {"10 -4\n", "6"}, {"5 5\n", "11\n"}};
  auto py = sandbox().run_io("python", "a, b = map(int, input().split())\nprint(a + b)\n", cases);
  ASSERT_EQ(py.tests.size(), 3u);
  EXPECT_EQ(py.tests[0].verdict, "passed");
  EXPECT_EQ(py.tests[1].verdict, "passed");  // trailing newline differences do not matter
  EXPECT_EQ(py.tests[2].verdict, "failed");  // 10 != 11
  EXPECT_NEAR(py.pass_fraction(), 2.0 / 3, 1e-9);
  auto cpp = sandbox().run_io("cpp", "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<\"\\n\";}\n", cases);
  EXPECT_EQ(cpp.tests[0].verdict, "passed") << cpp.tests[0].detail;
  EXPECT_EQ(cpp.tests[2].verdict, "failed");
  auto broken = sandbox().run_io("cpp", "int main( {", cases);
  EXPECT_EQ(broken.tests[0].verdict, "error");
  EXPECT_NE(broken.tests[0].detail.find("compile"), std::string::npos);
  EXPECT_EQ(sandbox().run_io("python", "raise SystemExit(3)\n", cases).tests[0].verdict, "error");
}

RunResult run_python(const std::string& code, double wall = 5) {
  SandboxLimits l;
  l.cpu_seconds = 2;
  l.wall_seconds = wall;
  return CodeSandbox(l).run({"python3", "-I", "-B", "main.py"}, {{"main.py", code}});
}

TEST(Sandbox, DiskOutputAndFilesAreBoundedAndTheHarnessStaysResponsive) {
  // /tmp and the working directory are tmpfs filesystems of disk_bytes and disk_files each.
  auto fill = [](const std::string& dir) {
    // Files of 8 MiB (under the 16 MiB file size limit) until the filesystem is full.
    return run_python("for i in range(100):\n    with open('" + dir + "/big%d' % i, 'wb') as f:\n"
                      "        for _ in range(8):\n            f.write(b'x' * (1 << 20))\n");
  };
  for (const std::string dir : {"/tmp", "/work", "."}) {
    const RunResult r = fill(dir);
    EXPECT_EQ(r.status, "failed") << dir;
    EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << dir << ": " << r.err;
    EXPECT_LT(r.seconds, 4) << dir;
  }
  for (const std::string dir : {"/tmp", "."}) {
    const RunResult r = run_python("for i in range(100000):\n    open('" + dir + "/f%d' % i, 'w').close()\n");
    EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << dir << ": " << r.err;
    EXPECT_LT(r.seconds, 4) << dir;
  }
  // 100 MB on stdout: kept up to output_bytes, read to the end, over in well under the wall limit.
  const RunResult flood = run_python("import sys\nfor _ in range(100):\n    sys.stdout.write('x' * (1 << 20))\n");
  EXPECT_EQ(flood.status, "ok");
  EXPECT_EQ(flood.out.size(), SandboxLimits{}.output_bytes);
  EXPECT_LT(flood.seconds, 4);
}

TEST(Sandbox, NoNamespacesPtraceOrMountsInside) {
  // Each attempt prints its outcome: a nested user namespace (through libc and the unshare tool),
  // ptrace, a mount, reading another process's memory.
  const std::string probe =
      "import ctypes, os, subprocess\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "print('unshare', libc.unshare(0x10000000))\n"
      "print('unshare-tool', subprocess.run(['unshare', '-U', 'true'], capture_output=True).returncode)\n"
      "print('ptrace', libc.ptrace(0, 0, 0, 0))\n"
      "print('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))\n"
      "try:\n"
      "    open('/proc/1/mem', 'rb').read(1)\n"
      "    print('mem 0')\n"
      "except OSError:\n"
      "    print('mem -1')\n";
  const RunResult r = run_python(probe);
  EXPECT_EQ(r.status, "ok") << r.err;
  for (const char* line : {"unshare -1\n", "ptrace -1\n", "mount -1\n", "mem -1\n"})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << " in:\n" << r.out;
  EXPECT_EQ(r.out.find("unshare-tool 0"), std::string::npos) << r.out;
}

TEST(Sandbox, WithoutBubblewrapItRefusesUnlessAllowedAndStillKillsEveryDescendant) {
  ::setenv("R1_BWRAP", "none", 1);  // as on a machine without it
  SandboxLimits l;
  l.wall_seconds = 1;
  EXPECT_THROW({ CodeSandbox refused(l); }, Error);
  try {
    CodeSandbox refused(l);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--unsafe-no-sandbox"), std::string::npos) << e.what();
  }
  const CodeSandbox unsafe(l, 1, /*allow_unisolated=*/true);
  ::unsetenv("R1_BWRAP");
  EXPECT_FALSE(unsafe.isolated());
  // A child that leaves the session (setsid) and would write a file 2 s later, after the run ended
  // (wall limit 1 s); its parent exits at once, or sleeps past the wall limit. No child may live on.
  namespace fs = std::filesystem;
  for (const std::string parent : {"pass", "time.sleep(30)"}) {
    const fs::path marker = fs::temp_directory_path() / ("r1-escaped-" + std::to_string(::getpid()) + "-" +
                                                         std::to_string(parent.size()));
    const std::string code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(2)\n"
                             "    open('" + marker.string() + "', 'w').write('escaped')\n    os._exit(0)\n" + parent + "\n";
    const RunResult r = unsafe.run({"python3", "-I", "-B", "main.py"}, {{"main.py", code}});
    EXPECT_LT(r.seconds, 1.9) << parent;
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    EXPECT_FALSE(fs::exists(marker)) << parent << ": a setsid child outlived the run";
    fs::remove(marker);
  }
  // Seccomp holds without bubblewrap too.
  const RunResult ptrace = unsafe.run({"python3", "-I", "-B", "main.py"},
                                      {{"main.py", "import ctypes\nprint(ctypes.CDLL(None).ptrace(0, 0, 0, 0))\n"}});
  EXPECT_EQ(ptrace.out, "-1\n") << ptrace.err;
}

TEST(Sandbox, HostileProgramsAreContainedAndReported) {
  namespace fs = std::filesystem;
  // An infinite loop: stopped by the CPU/wall limit.
  EXPECT_EQ(run_python("while True: pass\n").status, "timeout");
  // A sleeping process: stopped by the wall clock.
  EXPECT_EQ(run_python("import time\ntime.sleep(60)\n", 1.5).status, "timeout");
  // Allocating 10 GB fails.
  auto big = run_python("x = bytearray(10 * 1024**3)\n");
  EXPECT_NE(big.status, "ok");
  EXPECT_NE(big.err.find("MemoryError"), std::string::npos) << big.err;
  // A fork bomb is contained (and this process is fine).
  auto bomb = run_python("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", 3);
  EXPECT_NE(bomb.status, "ok");
  // Writing outside the scratch directory.
  const std::string outside = (fs::temp_directory_path() / ("r1-escape-" + std::to_string(::getpid()))).string();
  auto write = run_python("open('" + outside + "', 'w').write('x')\nopen('/usr/r1-escape', 'w').write('x')\n");
  EXPECT_NE(write.status, "ok");
  EXPECT_FALSE(fs::exists(outside));
  EXPECT_FALSE(fs::exists("/usr/r1-escape"));
  // Reading the project's files and /etc/shadow.
  const std::string source = fs::absolute(__FILE__).string();
  auto read = run_python("print(open('" + source + "').read()[:20])\n");
  EXPECT_NE(read.status, "ok");
  EXPECT_EQ(read.out.find("The code sandbox"), std::string::npos);
  auto shadow = run_python("print(open('/etc/shadow').read())\n");
  EXPECT_NE(shadow.status, "ok");
  // The home directory of the user running r1: not there.
  const char* home = std::getenv("HOME");
  ASSERT_NE(home, nullptr);
  auto listing = run_python("import os\nprint(os.listdir('" + std::string(home) + "'))\n");
  EXPECT_NE(listing.status, "ok") << listing.out;
  // Opening a network connection to a server listening here.
  const int server = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::listen(server, 1);
  ::getsockname(server, reinterpret_cast<sockaddr*>(&addr), &len);
  auto net = run_python("import socket\ns = socket.create_connection(('127.0.0.1', " + std::to_string(ntohs(addr.sin_port)) +
                        "), timeout=2)\nprint('connected')\n");
  ::close(server);
  EXPECT_NE(net.status, "ok");
  EXPECT_EQ(net.out.find("connected"), std::string::npos);
  // Spawning a shell works only inside the same sandbox: it cannot write the project either.
  const std::string in_project = fs::path(source).parent_path().string() + "/r1-escape";
  auto shell = run_python("import subprocess\nsubprocess.run(['sh', '-c', 'echo x > " + outside + "; echo x > " +
                          in_project + "'], check=True)\n");
  EXPECT_NE(shell.status, "ok");  // the project is not there to write to
  EXPECT_FALSE(fs::exists(outside));  // and its /tmp is its own
  EXPECT_FALSE(fs::exists(in_project));
  // Killing the parent (and everything it can see) does not reach this process.
  auto kill = run_python("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(" + std::to_string(::getpid()) +
                         ", signal.SIGKILL)\n");
  EXPECT_NE(kill.status, "ok");
  auto kill_all = run_python("import os, signal\nos.kill(-1, signal.SIGKILL)\n");
  SUCCEED() << "still running after kill attempts: " << kill.status << ", " << kill_all.status;
}

}  // namespace
}  // namespace r1
