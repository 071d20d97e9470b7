// r1 report RUN_DIR: a self-contained HTML report of a run (report/report.h).
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "report/report.h"
#include "util/json_file.h"

namespace r1::cli {

void add_report_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("report", "write a self-contained HTML report of a run's metrics and samples");
  auto args = std::make_shared<std::pair<std::string, std::string>>();
  cmd->add_option("run", args->first, "the run directory (with metrics.jsonl)")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--out", args->second, "the HTML file (default RUN/report.html)");
  cmd->callback([args] {
    const std::string out = args->second.empty() ? (std::filesystem::path(args->first) / "report.html").string() : args->second;
    write_text_file(out, render_run_report(args->first));
    std::printf("report: %s\n", out.c_str());
  });
}

}  // namespace r1::cli
