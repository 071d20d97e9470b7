// Prompt files for GRPO, rejection sampling and distillation: JSONL rows with "prompt" / "problem"
// / "question" (or "messages"), plus whatever the rewards check against (kept as metadata), put in
// the R1-Zero template, the model's chat template or left plain, and tokenized.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace r1 {

struct PromptRow {
  std::string text;           // the prompt as the model sees it (template applied)
  std::vector<int64_t> ids;
  nlohmann::json metadata;    // the whole input row
};

// The chat format of --prompt-template chat: --chat-template's, else the tokenizer's (none for
// other templates).
std::optional<ChatFormat> chat_prompt_format(const std::string& prompt_template, const std::string& chat_template,
                                             const Tokenizer& tokenizer);

// prompt_template: r1-zero | chat (chat_template names one, else the tokenizer's) | plain.
// Errors name the file and line.
std::vector<PromptRow> read_prompts(const std::string& path, const std::string& prompt_template,
                                    const std::string& chat_template, const Tokenizer& tokenizer);

}  // namespace r1
