// The code sandbox: HumanEval's canonical solutions pass and broken ones fail; stdin/stdout cases
// in Python and C++; hostile programs are contained and reported.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include <nlohmann/json.hpp>

#include "eval/tasks.h"
#include "rewards/sandbox.h"
#include "shared_data.h"

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
  const auto task = load_eval_task("humaneval", testing::shared_data());  // HumanEval.jsonl.gz
  std::vector<nlohmann::json> rows;
  for (const auto& item : task.items) rows.push_back(item.metadata);
  ASSERT_EQ(rows.size(), 164u);
  std::vector<std::function<TestReport()>> jobs;
  for (const auto& r : rows) {
    const std::string prompt = r["prompt"], test = r["test"], entry = r["entry_point"];
    const std::string solution = r["canonical_solution"];
    jobs.push_back([=] { return sandbox().run_humaneval(prompt, solution, test, entry); });
    jobs.push_back([=] { return sandbox().run_humaneval(prompt, "    pass\n", test, entry); });
    jobs.push_back([=] { return sandbox().run_humaneval(prompt, "    return '__wrong__'\n", test, entry); });
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
