// Each subcommand registers itself on the CLI11 app; main.cpp only wires them together.
#pragma once
#include <CLI/CLI.hpp>

namespace r1::cli {

// --unsafe-no-sandbox, on the commands that can run generated code (grpo, eval, sample).
inline constexpr const char* kUnsafeNoSandboxHelp =
    "where bubblewrap cannot create namespaces, run generated code anyway, with rlimits and seccomp but WITHOUT "
    "filesystem, network or process isolation (by default that is an error)";

void add_model_command(CLI::App& app);
void add_model_inspect(CLI::App& model);  // r1 model inspect (cmd_gguf.cpp)
void add_model_import(CLI::App& model);   // r1 model import (cmd_gguf.cpp)
void add_model_export(CLI::App& model);   // r1 model export (cmd_gguf.cpp)
void add_generate_command(CLI::App& app);
void add_tokenizer_command(CLI::App& app);
void add_data_command(CLI::App& app);
void add_pretrain_command(CLI::App& app);
void add_sft_command(CLI::App& app);
void add_launch_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_grpo_command(CLI::App& app);
void add_report_command(CLI::App& app);
void add_rm_command(CLI::App& app);
void add_sample_command(CLI::App& app);
void add_plan_command(CLI::App& app);

}  // namespace r1::cli
