#include "rl/prompts.h"

#include <optional>

#include "tokenizer/chat_template.h"
#include "util/error.h"
#include "util/jsonl.h"

namespace r1 {

using nlohmann::json;

std::optional<ChatFormat> chat_prompt_format(const std::string& prompt_template, const std::string& chat_template,
                                             const Tokenizer& tokenizer) {
  if (prompt_template != "chat") return std::nullopt;
  return chat_template.empty() ? chat_format_from_jinja(tokenizer.chat_template()) : chat_format_from_name(chat_template);
}

std::vector<PromptRow> read_prompts(const std::string& path, const std::string& prompt_template,
                                    const std::string& chat_template, const Tokenizer& tokenizer) {
  std::optional<ChatFormat> format = chat_prompt_format(prompt_template, chat_template, tokenizer);
  if (prompt_template == "r1-zero")
    format = ChatFormat::kR1Zero;
  else if (prompt_template != "plain" && prompt_template != "chat")
    throw Error("--prompt-template '" + prompt_template + "': expected r1-zero, chat or plain");
  std::vector<PromptRow> rows;
  for (const auto& [j, lineno] : read_jsonl_rows(path)) {
    const std::string where = path + ":" + std::to_string(lineno);
    PromptRow row;
    row.metadata = j;
    std::vector<ChatMessage> messages;
    // TRL's conversational format: "prompt" holds the messages.
    const bool prompt_is_conversation = j.contains("prompt") && j["prompt"].is_array();
    if (j.contains("messages") || prompt_is_conversation) {
      try {
        messages = parse_messages(prompt_is_conversation ? json{{"messages", j["prompt"]}} : j);
      } catch (const Error& e) {
        throw Error(where + ": " + e.what());
      }
    } else {
      std::string question;
      for (const char* key : {"prompt", "problem", "question"})
        if (j.contains(key)) {
          if (!j[key].is_string()) throw Error(where + ": '" + key + "' must be a string");
          question = j[key].get<std::string>();
          break;
        }
      if (question.empty()) throw Error(where + ": needs a non-empty 'prompt', 'problem', 'question' or 'messages'");
      messages = {{"user", question}};
    }
    if (format) {
      const auto rendered = render_chat(tokenizer, *format, messages, true);
      row.text = rendered.text;
      row.ids.assign(rendered.ids.begin(), rendered.ids.end());
    } else {
      row.text = messages.back().content;
      const auto ids = tokenizer.encode(row.text, true);
      row.ids.assign(ids.begin(), ids.end());
    }
    if (row.ids.empty()) throw Error(where + ": the prompt encodes to no tokens");
    rows.push_back(std::move(row));
  }
  if (rows.empty()) throw Error(path + ": no prompts");
  return rows;
}

}  // namespace r1
