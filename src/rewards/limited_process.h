// Running a program under limits: rlimits, an unprivileged uid, stdin fed and stdout/stderr (and
// file descriptor 3, the "channel") read to the end with a cap, and a monitor process that
// enforces the wall clock and kills every descendant. The code sandbox (sandbox.h) runs
// bubblewrap through it; run_command runs a user's trusted command. Torch-free.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "rewards/sandbox.h"

namespace r1 {

// /usr/bin/NAME, /bin/NAME or /usr/local/bin/NAME, whichever is executable; "" if none.
std::string find_program(const char* name);

// Runs argv (argv[0] a path) with environment env in workdir as uid run_as (0: the caller's).
// with_channel: the program's descriptor 3 is a pipe whose contents land in RunResult::channel.
RunResult run_limited(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                      const SandboxLimits& limits, uid_t run_as, const std::string& workdir,
                      const std::string& stdin_text, bool with_channel);

}  // namespace r1
