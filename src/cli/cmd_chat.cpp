// r1 chat: talk to a model in the terminal. Streams the answer as it is generated, shows the
// <think> section dimmed (on a terminal), keeps the conversation, and takes commands:
//   /reset  /system TEXT  /temp X  /help  /quit
// Multi-line input: end a line with \ to continue it, or wrap a block in """ lines.
// Ctrl-C stops the current answer and returns to the prompt; Ctrl-D (or /quit) leaves.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <iostream>
#include <memory>
#include <mutex>

#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "serve/reasoning.h"
#include "util/error.h"

namespace r1::cli {
namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) { g_interrupted = true; }

// One message from the user: a line, lines joined by trailing backslashes, or a """ block.
// Returns false at end of input.
bool read_message(std::string& out, bool tty) {
  out.clear();
  std::string line;
  if (tty) std::cout << "\n> " << std::flush;
  if (!std::getline(std::cin, line)) return false;
  if (line == "\"\"\"") {
    while (std::getline(std::cin, line) && line != "\"\"\"") out += line + "\n";
    if (!out.empty()) out.pop_back();
    return true;
  }
  while (!line.empty() && line.back() == '\\') {
    out += line.substr(0, line.size() - 1) + "\n";
    if (tty) std::cout << ". " << std::flush;
    if (!std::getline(std::cin, line)) break;
  }
  out += line;
  return true;
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("chat", "chat with a model in the terminal (streaming, /reset, /system, /temp)");
  struct Args {
    EngineFlags flags;
    std::string system;
  };
  auto a = std::make_shared<Args>();
  a->flags.sampling.temperature = 0.6;  // DeepSeek-R1's recommended settings
  a->flags.sampling.top_p = 0.95;
  a->flags.sampling.max_new_tokens = 2048;
  a->flags.engine.max_batch = 1;
  a->flags.add_to(cmd);
  cmd->add_option("--system", a->system, "system prompt");
  cmd->callback([a] {
    a->flags.finish_sampling();
    LoadedModel m = load_for_generation(a->flags);
    if (!m.tokenizer) throw Error(a->flags.model + ": no tokenizer.json");
    if (!m.chat_format) throw Error(a->flags.model + ": no chat template r1 knows; pass --chat-template NAME");
    const bool tty = ::isatty(STDOUT_FILENO) && ::isatty(STDIN_FILENO);
    const char* dim = tty ? "\x1b[2m" : "";
    const char* plain = tty ? "\x1b[0m" : "";
    // No SA_RESTART: Ctrl-C at the prompt interrupts getline instead of killing the program.
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, nullptr);
    m.engine->start();
    std::vector<ChatMessage> history;
    SamplingParams params = a->flags.sampling;
    std::string system = a->system;
    if (tty)
      std::cout << "r1 chat with " << a->flags.model << " (/help for commands, Ctrl-C stops an answer, Ctrl-D quits)\n";
    std::string text;
    while (true) {
      g_interrupted = false;
      if (!read_message(text, tty)) {
        if (g_interrupted) {  // Ctrl-C at the prompt: a fresh prompt, not an exit
          std::cin.clear();
          continue;
        }
        break;
      }
      if (text.empty()) continue;
      if (text == "/quit" || text == "/exit") break;
      if (text == "/help") {
        std::cout << "/reset  forget the conversation\n/system TEXT  set the system prompt (and reset)\n"
                     "/temp X  sampling temperature\n/quit  leave\n";
        continue;
      }
      if (text == "/reset") {
        history.clear();
        std::cout << "(conversation cleared)\n";
        continue;
      }
      if (text.rfind("/system", 0) == 0) {
        system = text.size() > 8 ? text.substr(8) : "";
        history.clear();
        std::cout << "(system prompt set; conversation cleared)\n";
        continue;
      }
      if (text.rfind("/temp", 0) == 0) {
        try {
          const double t = std::stod(text.substr(5));
          if (t < 0) throw std::invalid_argument("negative");
          params.temperature = t;
          std::cout << "(temperature " << t << ")\n";
        } catch (const std::exception&) {
          std::cout << "usage: /temp 0.6\n";
        }
        continue;
      }
      history.push_back({"user", text});
      std::vector<ChatMessage> messages;
      if (!system.empty()) messages.push_back({"system", system});
      messages.insert(messages.end(), history.begin(), history.end());
      const auto rendered = render_chat(*m.tokenizer, *m.chat_format, messages, true);
      const std::string& prompt_text = rendered.text;
      const bool opens_think = prompt_text.size() >= 8 && prompt_text.find("<think>", prompt_text.size() - 9) != std::string::npos;
      ThinkSplitter split(opens_think);
      std::mutex mutex;
      std::condition_variable cv;
      bool done = false, thinking = false;
      std::string answer;
      Request r;
      r.prompt.assign(rendered.ids.begin(), rendered.ids.end());
      r.params = params;
      auto show = [&](const ThinkSplitter::Parts& parts) {
        if (!parts.reasoning.empty()) {
          if (!thinking) std::cout << dim << (tty ? "" : "<think>");
          thinking = true;
          std::cout << parts.reasoning;
        }
        if (!parts.content.empty()) {
          if (thinking) std::cout << (tty ? "" : "</think>") << plain << "\n";
          thinking = false;
          std::cout << parts.content;
          answer += parts.content;
        }
        std::cout << std::flush;
      };
      std::string finish;
      r.on_event = [&](const StreamEvent& e) {
        show(split.push(e.text_delta));
        if (!e.done) return;
        show(split.finish());
        std::lock_guard<std::mutex> lock(mutex);
        finish = e.completion->finish_reason;
        done = true;
        cv.notify_all();
      };
      uint64_t id = 0;
      try {
        id = m.engine->submit(std::move(r));
      } catch (const Error& e) {
        std::cout << "error: " << e.what() << "\n";
        history.pop_back();
        continue;
      }
      std::unique_lock<std::mutex> lock(mutex);
      bool cancelled = false;
      while (!done) {
        cv.wait_for(lock, std::chrono::milliseconds(50));
        if (g_interrupted && !cancelled) {
          m.engine->cancel(id);
          cancelled = true;
        }
      }
      lock.unlock();
      if (thinking) std::cout << plain;
      std::cout << (finish == "cancelled" ? "\n[stopped]" : finish == "length" ? "\n[length limit]" : "") << "\n";
      history.push_back({"assistant", answer});
    }
    m.engine->stop();
  });
}

}  // namespace r1::cli
