#include "serve/openai_api.h"

#include <cmath>

namespace r1 {
namespace {

using nlohmann::json;

ApiError bad(const std::string& param, const std::string& message) {
  return ApiError(400, "'" + param + "': " + message, param);
}

double number(const json& body, const std::string& key, double fallback, double lo, double hi) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (!body[key].is_number()) throw bad(key, "expected a number, got " + std::string(body[key].type_name()));
  const double v = body[key].get<double>();
  if (!(v >= lo && v <= hi)) throw bad(key, "must be between " + json(lo).dump() + " and " + json(hi).dump());
  return v;
}

int64_t integer(const json& body, const std::string& key, int64_t fallback, int64_t lo, int64_t hi) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (!body[key].is_number_integer()) throw bad(key, "expected an integer, got " + body[key].dump().substr(0, 40));
  const int64_t v = body[key].get<int64_t>();
  if (v < lo || v > hi) throw bad(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return v;
}

bool boolean(const json& body, const std::string& key, bool fallback) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (!body[key].is_boolean()) throw bad(key, "expected true or false");
  return body[key].get<bool>();
}

std::vector<int64_t> encode_prompt(const json& p, const Tokenizer& tokenizer, int64_t vocab) {
  if (p.is_string()) {
    const auto ids = tokenizer.encode(p.get<std::string>(), true);
    return {ids.begin(), ids.end()};
  }
  std::vector<int64_t> ids;
  for (const auto& x : p) {
    if (!x.is_number_integer()) throw bad("prompt", "a token-id prompt must hold integers only");
    const int64_t id = x.get<int64_t>();
    if (id < 0 || id >= vocab) throw bad("prompt", "token id " + std::to_string(id) + " is outside the vocabulary");
    ids.push_back(id);
  }
  return ids;
}

}  // namespace

json ApiError::body() const {
  return {{"error", {{"message", what()}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)},
                     {"code", status == 404 ? json("model_not_found") : json(nullptr)}}}};
}

ApiRequest parse_api_request(const json& body, bool chat, const ApiLimits& limits, const Tokenizer& tokenizer,
                             const std::optional<ChatFormat>& format) {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  ApiRequest r;
  r.chat = chat;
  // One model is served, so any name is accepted, as llama.cpp's server does (clients send the name
  // of the model they think they talk to); /v1/models says so.
  if (body.contains("model") && !body["model"].is_string()) throw bad("model", "expected a string");
  if (chat) {
    if (!body.contains("messages")) throw bad("messages", "is required");
    if (!body["messages"].is_array() || body["messages"].empty()) throw bad("messages", "expected a non-empty array");
    std::vector<ChatMessage> messages;
    try {
      json conversation = {{"messages", json::array()}};
      for (const auto& m : body["messages"]) {
        if (!m.is_object()) throw Error("each message must be an object");
        json copy = m;
        // OpenAI clients may send content as a list of {"type": "text", "text": ...} parts.
        if (copy.contains("content") && copy["content"].is_array()) {
          std::string text;
          for (const auto& part : copy["content"])
            if (part.is_object() && part.value("type", "") == "text" && part.contains("text") && part["text"].is_string())
              text += part["text"].get<std::string>();
          copy["content"] = text;
        }
        conversation["messages"].push_back({{"role", copy.value("role", json(nullptr))},
                                            {"content", copy.value("content", json(nullptr))}});
      }
      messages = parse_messages(conversation);
    } catch (const ApiError&) {
      throw;
    } catch (const std::exception& e) {
      throw bad("messages", e.what());
    }
    if (!format) throw ApiError(400, "this model has no chat template r1 knows: use /v1/completions");
    RenderedChat rendered;
    try {
      rendered = render_chat(tokenizer, *format, messages, true);
    } catch (const std::exception& e) {
      throw bad("messages", e.what());
    }
    r.prompts.push_back({rendered.ids.begin(), rendered.ids.end()});
    const std::string& text = rendered.text;
    const size_t tail = text.find_last_not_of(" \n");
    r.prompt_opens_think = tail != std::string::npos && tail >= 6 && text.compare(tail - 6, 7, "<think>") == 0;
  } else {
    if (!body.contains("prompt")) throw bad("prompt", "is required");
    const json& p = body["prompt"];
    if (p.is_string()) {
      r.prompts.push_back(encode_prompt(p, tokenizer, limits.vocab_size));
    } else if (p.is_array() && !p.empty() && p[0].is_number_integer()) {
      r.prompts.push_back(encode_prompt(p, tokenizer, limits.vocab_size));
    } else if (p.is_array() && !p.empty()) {
      for (const auto& one : p) {
        if (!one.is_string() && !one.is_array()) throw bad("prompt", "expected strings or token-id arrays");
        r.prompts.push_back(encode_prompt(one, tokenizer, limits.vocab_size));
      }
    } else {
      throw bad("prompt", "expected a string, an array of strings or an array of token ids");
    }
    for (const auto& ids : r.prompts)
      if (ids.empty()) throw bad("prompt", "is empty");
  }
  SamplingParams& s = r.params;
  s.temperature = number(body, "temperature", 1.0, 0, 2);
  s.top_p = number(body, "top_p", 1.0, 0, 1);
  if (s.top_p <= 0) throw bad("top_p", "must be greater than 0");
  s.top_k = integer(body, "top_k", 0, 0, limits.vocab_size);
  s.min_p = number(body, "min_p", 0, 0, 1);
  s.repetition_penalty = number(body, "repetition_penalty", 1.0, 0.01, 100);
  s.presence_penalty = number(body, "presence_penalty", 0, -2, 2);
  s.frequency_penalty = number(body, "frequency_penalty", 0, -2, 2);
  const int64_t default_tokens = chat ? limits.max_tokens : std::min<int64_t>(16, limits.max_tokens);
  const std::string tokens_key = body.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  s.max_new_tokens = integer(body, tokens_key, default_tokens, 1, limits.max_tokens);
  r.n = static_cast<int>(integer(body, "n", 1, 1, limits.max_n));
  if (body.contains("seed") && !body["seed"].is_null()) {
    if (!body["seed"].is_number_integer()) throw bad("seed", "expected an integer");
    s.seed = static_cast<uint64_t>(body["seed"].get<int64_t>());
  }
  if (body.contains("stop") && !body["stop"].is_null()) {
    const json& stop = body["stop"];
    if (stop.is_string()) {
      s.stop.push_back(stop.get<std::string>());
    } else if (stop.is_array() && stop.size() <= 4) {
      for (const auto& x : stop) {
        if (!x.is_string()) throw bad("stop", "expected strings");
        s.stop.push_back(x.get<std::string>());
      }
    } else {
      throw bad("stop", "expected a string or an array of up to 4 strings");
    }
    for (const auto& x : s.stop)
      if (x.empty()) throw bad("stop", "stop strings must not be empty");
  }
  if (body.contains("logit_bias") && !body["logit_bias"].is_null()) {
    if (!body["logit_bias"].is_object()) throw bad("logit_bias", "expected an object of token id -> bias");
    for (const auto& [key, value] : body["logit_bias"].items()) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(key, &used);
        if (used != key.size()) id = -1;
      } catch (const std::exception&) {
      }
      if (id < 0 || id >= limits.vocab_size) throw bad("logit_bias", "'" + key + "' is not a token id of this model");
      if (!value.is_number() || std::fabs(value.get<double>()) > 100) throw bad("logit_bias", "biases are numbers in [-100, 100]");
      s.logit_bias[id] = value.get<double>();
    }
  }
  s.ignore_eos = boolean(body, "ignore_eos", false);
  r.stream = boolean(body, "stream", false);
  if (body.contains("stream_options") && body["stream_options"].is_object())
    r.include_usage = boolean(body["stream_options"], "include_usage", false);
  if (chat) {
    r.logprobs = boolean(body, "logprobs", false);
  } else if (body.contains("logprobs") && !body["logprobs"].is_null()) {
    r.logprobs = integer(body, "logprobs", 0, 0, 5) >= 0;
  }
  for (const auto& ids : r.prompts)
    if (static_cast<int64_t>(ids.size()) + 1 > limits.max_context)
      throw ApiError(400, "the prompt has " + std::to_string(ids.size()) + " tokens; this server's context is " +
                              std::to_string(limits.max_context) + " tokens", chat ? "messages" : "prompt");
  return r;
}

}  // namespace r1
