// r1: the DeepSeek training recipe as one program. Each stage is a subcommand (see commands.h).
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include "cli/commands.h"
#include "util/error.h"

namespace {

// libgomp reads OMP_WAIT_POLICY when it is loaded, before main() runs, so the only way to give
// the binary a default is to set it and re-execute once. Active spinning made small parallel
// regions ~10x slower on 2-core VMs (DESIGN.md, Performance notes); users can still override it.
void default_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("R1_NO_REEXEC") != nullptr) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::setenv("R1_NO_REEXEC", "1", 1);
  ::execv("/proc/self/exe", argv);  // on failure, carry on with the runtime's default
}

}  // namespace

int main(int argc, char** argv) {
  default_passive_openmp(argv);
  CLI::App app{"r1: the DeepSeek recipe (pretrain, SFT, reward model, GRPO, distill, serve) in one C++ program"};
  app.require_subcommand(1);
  app.set_config("--config", "", "read options from a TOML file (same names as the flags)");
  app.set_version_flag("--version", "r1 0.1");
  r1::cli::add_model_command(app);
  r1::cli::add_generate_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const r1::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
