// r1: the DeepSeek training recipe as one program. Each stage is a subcommand (see commands.h).
#include <csignal>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include "cli/commands.h"
#include "cli/config_file.h"
#include "util/error.h"
#include "util/memory.h"


int main(int argc, char** argv) {
  r1::keep_freed_memory_in_process();
  // A write to a closed socket or pipe (a data-parallel peer that died, a server client that hung
  // up) is an error the code reports, not a signal that kills the process without a word.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"r1: the DeepSeek recipe (pretrain, SFT, reward model, GRPO, distill, serve) in one C++ program"};
  app.require_subcommand(1);
  r1::cli::install_config_file_option(app, argc, argv);
  app.set_version_flag("--version", "r1 0.1");
  r1::cli::add_model_command(app);
  r1::cli::add_generate_command(app);
  r1::cli::add_tokenizer_command(app);
  r1::cli::add_data_command(app);
  r1::cli::add_pretrain_command(app);
  r1::cli::add_sft_command(app);
  r1::cli::add_launch_command(app);
  r1::cli::add_eval_command(app);
  r1::cli::add_serve_command(app);
  r1::cli::add_chat_command(app);
  r1::cli::add_grpo_command(app);
  r1::cli::add_report_command(app);
  r1::cli::add_rm_command(app);
  r1::cli::add_sample_command(app);
  r1::cli::add_plan_command(app);
  // CLI11 would answer an unknown command with "A subcommand is required": name it instead.
  if (argc > 1 && argv[1][0] != '-') {
    std::string known;
    bool found = false;
    for (const CLI::App* sub : app.get_subcommands({})) {
      found = found || sub->get_name() == argv[1];
      known += (known.empty() ? "" : ", ") + sub->get_name();
    }
    if (!found) {
      std::cerr << "error: unknown command '" << argv[1] << "' (commands: " << known << ")\n";
      return 2;
    }
  }
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
