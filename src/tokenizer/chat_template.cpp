#include "tokenizer/chat_template.h"

#include "util/error.h"

namespace r1 {

const char* const kR1ZeroTemplate =
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
    "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. User: {prompt}. "
    "Assistant:";

namespace {

const char* const kCoderSystem =
    "You are an AI programming assistant, utilizing the DeepSeek Coder model, developed by DeepSeek Company, and "
    "you only answer questions related to computer science. For politically sensitive questions, security and "
    "privacy issues, and other non-computer science questions, you will refuse to answer.";

struct Segment {
  std::string text;
  bool assistant;
};

class Builder {
 public:
  void add(const std::string& text, bool assistant = false) {
    if (!text.empty()) segments.push_back({text, assistant});
  }
  std::vector<Segment> segments;
};

std::string special_text(const Tokenizer& t, const std::string& token, const char* why) {
  if (!t.token_to_id(token)) throw Error("chat template needs the token " + token + " (" + why + "), which this tokenizer lacks");
  return token;
}

std::string added_token_text(const Tokenizer& t, std::optional<int32_t> id) {
  if (!id) return "";
  for (const auto& a : t.added_tokens())
    if (a.id == *id) return a.content;
  return "";
}

std::string bos_text(const Tokenizer& t) { return added_token_text(t, t.bos_id()); }

std::string after_reasoning(const std::string& content) {
  const size_t end = content.rfind("</think>");
  return end == std::string::npos ? content : content.substr(end + 8);
}

void check_roles(const std::vector<ChatMessage>& messages) {
  for (size_t i = 0; i < messages.size(); ++i)
    if (messages[i].role != "system" && messages[i].role != "user" && messages[i].role != "assistant")
      throw Error("message " + std::to_string(i) + ": role '" + messages[i].role +
                  "' is not one of system, user, assistant");
}

}  // namespace

std::vector<ChatMessage> parse_messages(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array())
    throw Error("expected {\"messages\": [{\"role\": ..., \"content\": ...}, ...]}");
  std::vector<ChatMessage> messages;
  for (const auto& m : j["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      throw Error("message " + std::to_string(messages.size()) + " needs string 'role' and 'content'");
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return messages;
}

const std::vector<std::string>& chat_template_names() {
  static const std::vector<std::string> names = {"deepseek-llm", "deepseek-v3", "deepseek-r1",
                                                 "chatml",       "deepseek-coder", "r1-zero",
                                                 "plain"};
  return names;
}

ChatFormat chat_format_from_name(const std::string& name) {
  const auto& names = chat_template_names();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<ChatFormat>(i);
  std::string known;
  for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown chat template '" + name + "' (known: " + known + ")");
}

std::string chatml_default_system(const std::string& jinja) {
  // The block ChatML templates (Qwen2.5, SmolLM2) open with when the first message is not the
  // system's: {{ '<|im_start|>system\nTEXT<|im_end|>\n' }} after a `!= 'system'` test.
  const size_t test = jinja.find("!= 'system'");
  if (test == std::string::npos) return "";
  const std::string open = "'<|im_start|>system";
  const size_t at = jinja.find(open, test);
  if (at == std::string::npos || jinja.find("{%", test) < at) return "";
  size_t from = at + open.size();  // then a newline, written as one or as the escape \n
  if (jinja.compare(from, 2, "\\n") == 0) from += 2;
  else if (jinja.compare(from, 1, "\n") == 0) from += 1;
  else return "";
  const size_t close = jinja.find("<|im_end|>", from);
  if (close == std::string::npos) return "";
  const std::string text = jinja.substr(from, close - from);
  if (text.find('\'') != std::string::npos || text.find("{{") != std::string::npos) return "";  // not a literal
  std::string out;  // the literal's \n escapes as newlines
  for (size_t i = 0; i < text.size(); ++i) {
    const bool escape = text[i] == '\\' && i + 1 < text.size() && text[i + 1] == 'n';
    out += escape ? '\n' : text[i];
    i += escape;
  }
  return out;
}

ChatFormat chat_format_from_jinja(const std::string& jinja) {
  auto has = [&](const char* s) { return jinja.find(s) != std::string::npos; };
  if (has("<｜User｜>") && has("<｜Assistant｜>")) return has("<think>\\n") ? ChatFormat::kDeepSeekR1 : ChatFormat::kDeepSeekV3;
  if (has("'User: '") && has("'Assistant: '")) return ChatFormat::kDeepSeekLlm;
  if (has("### Instruction") && has("### Response")) return ChatFormat::kDeepSeekCoder;
  if (has("<|im_start|>")) return ChatFormat::kChatMl;
  std::string known;
  for (const auto& n : chat_template_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("the tokenizer's chat_template is not one r1 knows; pick one by name with --chat-template (" + known + ")");
}

RenderedChat render_chat(const Tokenizer& t, ChatFormat format, const std::vector<ChatMessage>& messages,
                         bool add_generation_prompt) {
  check_roles(messages);
  Builder b;
  switch (format) {
    case ChatFormat::kDeepSeekLlm: {
      const std::string eos = special_text(t, "<｜end▁of▁sentence｜>", "end of an assistant turn");
      b.add(bos_text(t));
      for (const auto& m : messages) {
        if (m.role == "user") b.add("User: " + m.content + "\n\n");
        else if (m.role == "system") b.add(m.content + "\n\n");
        else {
          b.add("Assistant:");
          b.add(" " + m.content + eos, true);  // what the model says after the "Assistant:" prompt
        }
      }
      if (add_generation_prompt) b.add("Assistant:");
      break;
    }
    case ChatFormat::kDeepSeekV3:
    case ChatFormat::kDeepSeekR1: {
      const bool r1 = format == ChatFormat::kDeepSeekR1;
      const std::string user = special_text(t, "<｜User｜>", "user turns");
      const std::string assistant = special_text(t, "<｜Assistant｜>", "assistant turns");
      const std::string eos = special_text(t, "<｜end▁of▁sentence｜>", "end of an assistant turn");
      std::string system;
      for (const auto& m : messages)
        if (m.role == "system") system += (system.empty() ? "" : "\n\n") + m.content;
      b.add(bos_text(t) + system);
      size_t last_assistant = messages.size();
      for (size_t i = 0; i < messages.size(); ++i)
        if (messages[i].role == "assistant") last_assistant = i;
      for (size_t i = 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (m.role == "user") {
          b.add(user + m.content);
        } else if (m.role == "assistant") {
          // R1 drops the reasoning of earlier turns; the turn being trained keeps it.
          const bool keep = !r1 || (i == last_assistant && !add_generation_prompt);
          b.add(assistant);
          b.add((keep ? m.content : after_reasoning(m.content)) + eos, true);
        }
      }
      if (add_generation_prompt) b.add(assistant + (r1 ? "<think>\n" : ""));
      break;
    }
    case ChatFormat::kChatMl: {
      const std::string start = special_text(t, "<|im_start|>", "turn starts");
      const std::string end = special_text(t, "<|im_end|>", "turn ends");
      const std::string fallback = chatml_default_system(t.chat_template());
      if (!fallback.empty() && (messages.empty() || messages[0].role != "system"))
        b.add(start + "system\n" + fallback + end + "\n");
      for (const auto& m : messages) {
        if (m.role == "assistant") {
          b.add(start + "assistant\n");
          b.add(m.content + end, true);
          b.add("\n");
        } else {
          b.add(start + m.role + "\n" + m.content + end + "\n");
        }
      }
      if (add_generation_prompt) b.add(start + "assistant\n");
      break;
    }
    case ChatFormat::kDeepSeekCoder: {
      const std::string eot = special_text(t, "<|EOT|>", "end of a response");
      std::string system = kCoderSystem;
      for (const auto& m : messages)
        if (m.role == "system") system = m.content;
      b.add(bos_text(t) + system + "\n");
      for (const auto& m : messages) {
        if (m.role == "user") b.add("### Instruction:\n" + m.content + "\n");
        if (m.role == "assistant") {
          b.add("### Response:\n");
          b.add(m.content + "\n" + eot, true);
          b.add("\n");
        }
      }
      if (add_generation_prompt) b.add("### Response:\n");
      break;
    }
    case ChatFormat::kR1Zero: {
      if (messages.empty() || messages[0].role != "user" || messages.size() > 2 ||
          (messages.size() == 2 && messages[1].role != "assistant"))
        throw Error("r1-zero renders one user question, optionally followed by one assistant answer");
      std::string prompt = kR1ZeroTemplate;
      prompt.replace(prompt.find("{prompt}"), 8, messages[0].content);
      b.add(prompt);
      if (messages.size() == 2) b.add(" " + messages[1].content, true);
      break;
    }
    case ChatFormat::kPlain: {
      const std::string eos = added_token_text(t, t.eos_id());
      for (const auto& m : messages) {
        if (m.role == "system") b.add(m.content + "\n");
        else if (m.role == "user") b.add(m.content);
        else b.add(m.content + eos, true);
      }
      break;  // no generation prompt: the model continues the user's text
    }
  }
  RenderedChat out;
  for (const auto& s : b.segments) {
    out.text += s.text;
    const size_t before = out.ids.size();
    const auto ids = t.encode(s.text);
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    out.assistant_mask.insert(out.assistant_mask.end(), out.ids.size() - before, s.assistant ? 1 : 0);
  }
  return out;
}

}  // namespace r1
