// Chat templates: conversations rendered the way each model family was trained, with a mask of
// the tokens the assistant produced (SFT trains on those only). Torch-free.
//
//   deepseek-llm    <bos>User: {q}\n\nAssistant: {a}<eos>     (DeepSeek LLM / Math / V2 chat)
//   deepseek-v3     <bos>{system}<｜User｜>{q}<｜Assistant｜>{a}<eos>
//   deepseek-r1     as deepseek-v3, earlier turns' reasoning (up to </think>) stripped, and the
//                   generation prompt ends in "<think>\n"
//   chatml          <|im_start|>{role}\n{text}<|im_end|>\n    (Qwen)
//   deepseek-coder  {system}\n### Instruction:\n{q}\n### Response:\n{a}\n<|EOT|>\n
//   r1-zero         the plain-text prompt of the DeepSeek-R1 paper (Table 1), one question
//   plain           {system}\n{q}{a}<eos>{q}{a}<eos>...: the texts as they are, for base models
//                   trained on raw documents (the demo's "Q: 487+365=? A:" prompts)
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace r1 {

struct ChatMessage {
  std::string role;  // system, user, assistant
  std::string content;
};

struct RenderedChat {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<uint8_t> assistant_mask;  // 1 for tokens of assistant output (content + end marker)
};

// {"messages": [{"role": ..., "content": ...}, ...]} -> messages; r1::Error names the bad message.
std::vector<ChatMessage> parse_messages(const nlohmann::json& conversation);

enum class ChatFormat { kDeepSeekLlm, kDeepSeekV3, kDeepSeekR1, kChatMl, kDeepSeekCoder, kR1Zero, kPlain };

const std::vector<std::string>& chat_template_names();
ChatFormat chat_format_from_name(const std::string& name);
// Recognises a tokenizer_config.json Jinja chat_template as one of the known formats; an
// unknown one is an r1::Error saying how to pick one by name.
ChatFormat chat_format_from_jinja(const std::string& jinja);

// The system message a ChatML Jinja template inserts when the conversation has none (SmolLM2's
// "You are a helpful AI assistant named SmolLM, ..."), or "": render_chat adds it for kChatMl.
std::string chatml_default_system(const std::string& jinja);

// The DeepSeek-R1 paper's R1-Zero training template with `{prompt}` in place of the question.
extern const char* const kR1ZeroTemplate;

// Renders `messages`; with add_generation_prompt the text ends where the assistant starts.
// Errors (unknown role, r1-zero with more than one question) name the message index.
RenderedChat render_chat(const Tokenizer& tokenizer, ChatFormat format, const std::vector<ChatMessage>& messages,
                         bool add_generation_prompt);

}  // namespace r1
