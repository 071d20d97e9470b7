// The OpenAI request schema of /v1/completions and /v1/chat/completions: validation (each bad
// field becomes an ApiError with the HTTP status, the OpenAI error type and the parameter name)
// and conversion to engine requests; and the response/stream-chunk builders.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "infer/sampling.h"
#include "tokenizer/chat_template.h"
#include "util/error.h"

namespace r1 {

struct ApiError : Error {
  ApiError(int status, const std::string& message, const std::string& param = "",
           const std::string& type = "invalid_request_error")
      : Error(message), status(status), param(param), type(type) {}
  int status;
  std::string param, type;
  nlohmann::json body() const;  // {"error": {"message", "type", "param", "code"}}
};

struct ApiLimits {
  int64_t max_tokens = 1024;     // largest max_tokens a request may ask for (and the chat default)
  int64_t max_context = 0;       // prompt + completion
  int64_t max_n = 8;
  int64_t vocab_size = 0;
};

struct ApiRequest {
  bool chat = false, stream = false;
  bool logprobs = false;
  int n = 1;
  std::vector<std::vector<int64_t>> prompts;  // completions may carry several
  bool prompt_opens_think = false;            // chat: the template's generation prompt ends in <think>
  SamplingParams params;
  bool include_usage = false;                 // stream_options.include_usage
};

// Throws ApiError. `format` is the model's chat template (chat requests need one).
ApiRequest parse_api_request(const nlohmann::json& body, bool chat, const ApiLimits& limits, const Tokenizer& tokenizer,
                             const std::optional<ChatFormat>& format);

}  // namespace r1
