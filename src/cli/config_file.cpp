#include "cli/config_file.h"

#include <memory>

namespace r1::cli {
namespace {

// The chain of subcommand names at the front of argv (`r1 data arithmetic --out x` -> data, arithmetic).
std::vector<std::string> subcommand_path(const CLI::App& app, int argc, char** argv) {
  std::vector<std::string> path;
  const CLI::App* at = &app;
  for (int i = 1; i < argc && argv[i][0] != '-'; ++i) {
    const CLI::App* next = nullptr;
    for (const CLI::App* sub : at->get_subcommands({}))
      if (sub->get_name() == argv[i]) next = sub;
    if (next == nullptr) break;
    path.emplace_back(argv[i]);
    at = next;
  }
  return path;
}

// CLI11's TOML reader puts keys outside any section on the top-level app; this moves them to the subcommand
// being run, so a recipe file is just that command's flags. The path is worked out when the file is read,
// because the subcommands are added after install_config_file_option.
class SubcommandToml : public CLI::ConfigBase {
 public:
  SubcommandToml(const CLI::App* app, int argc, char** argv) : app_(app), argc_(argc), argv_(argv) {}

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::vector<CLI::ConfigItem> items = CLI::ConfigBase::from_config(input);
    const std::vector<std::string> path = subcommand_path(*app_, argc_, argv_);
    for (CLI::ConfigItem& item : items) {
      if (item.name == "++" || item.name == "--" || item.name == "config") continue;  // section markers
      if (item.parents.empty()) item.parents = path;
      check_key(item);
    }
    return items;
  }

  // CLI11 would say "INI was not able to parse grpo.bogus"; name the file, the key and the command instead.
  void check_key(const CLI::ConfigItem& item) const {
    const CLI::App* at = app_;
    std::string command = "r1";
    for (const std::string& name : item.parents) {
      const CLI::App* next = nullptr;
      for (const CLI::App* sub : at->get_subcommands({}))
        if (sub->get_name() == name) next = sub;
      if (next == nullptr)
        throw CLI::ConfigError(config_file() + ": section [" + item.fullname().substr(0, item.fullname().rfind('.')) +
                               "] is not an r1 command");
      at = next;
      command += " " + name;
    }
    if (at->get_option_no_throw("--" + item.name) == nullptr)
      throw CLI::ConfigError(config_file() + ": unknown key '" + item.name + "' ('" + command + "' has no --" +
                             item.name + " option; see " + command + " --help)");
  }

  std::string config_file() const {
    for (int i = 1; i < argc_; ++i) {
      const std::string arg = argv_[i];
      if (arg == "--config" && i + 1 < argc_) return argv_[i + 1];
      if (arg.rfind("--config=", 0) == 0) return arg.substr(9);
    }
    return "config file";
  }

 private:
  const CLI::App* app_;
  int argc_;
  char** argv_;
};

}  // namespace

void install_config_file_option(CLI::App& app, int argc, char** argv) {
  app.set_config("--config", "", "read options from a TOML file: the flag names as keys (flags given win)");
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.fallthrough();  // `r1 grpo --config F` as well as `r1 --config F grpo`
  app.config_formatter(std::make_shared<SubcommandToml>(&app, argc, argv));
}

std::string effective_config_toml(const CLI::App& command) {
  std::string path = command.get_name();
  for (const CLI::App* p = command.get_parent(); p != nullptr && p->get_parent() != nullptr; p = p->get_parent())
    path = p->get_name() + " " + path;
  return "# r1 " + path + ": the options of this run (flags, --config and defaults); rerun with\n# r1 " + path +
         " --config args.toml\n" + command.config_to_str(/*default_also=*/true, /*write_description=*/false);
}

}  // namespace r1::cli
