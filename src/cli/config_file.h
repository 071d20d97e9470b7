// `--config FILE.toml` for every subcommand: the file uses the flag names (`group-size = 16`), and its keys
// apply to the subcommand being run (`r1 grpo --config recipes/r1-zero.toml ...`). Flags on the command line
// win over the file. A `[grpo]` style section still works for files shared between commands. Unknown keys are
// an error naming the key and the file.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace r1::cli {

// Installs --config on `app` (call before adding subcommands so they inherit the settings); `argv` tells which
// subcommand path (e.g. {"data", "arithmetic"}) un-sectioned keys belong to.
void install_config_file_option(CLI::App& app, int argc, char** argv);

// The subcommand's options as they ended up (flags, config file and defaults), as a TOML file that
// `--config` reads back: trainers save it as RUN/args.toml.
std::string effective_config_toml(const CLI::App& command);

}  // namespace r1::cli
