#include "serve/server.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>

#include "serve/reasoning.h"
#include "serve/web_ui_html.h"  // generated from src/serve/web/index.html
#include "tokenizer/unicode.h"

namespace r1 {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Engine events of one HTTP request (all its prompts and samples), handed to the HTTP thread.
struct Channel {
  struct Event {
    int choice;
    int64_t id;
    float logprob;
    std::string delta;
    bool done;
    Completion completion;
  };
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<Event> events;
  std::vector<uint64_t> engine_ids;
};

std::string sse(const json& j) { return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n"; }

std::string finish_reason(const std::string& engine_reason) { return engine_reason == "length" ? "length" : "stop"; }

}  // namespace

struct Server::Impl {
  Engine& engine;
  const Tokenizer& tokenizer;
  std::optional<ChatFormat> format;
  ServerOptions options;
  ApiLimits limits;
  httplib::Server http;
  std::atomic<int> in_flight{0};
  std::atomic<uint64_t> counter{0};
  int port = 0;

  Impl(Engine& e, const Tokenizer& t, std::optional<ChatFormat> f, ServerOptions o)
      : engine(e), tokenizer(t), format(f), options(std::move(o)) {
    limits.max_tokens = std::min<int64_t>(options.max_tokens, engine.max_context() - 1);
    limits.max_context = engine.max_context();
    limits.max_n = engine.max_batch();
    limits.vocab_size = engine.model()->config().vocab_size;
  }

  static void send_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    res.set_content(e.body().dump(), "application/json");
  }

  bool authorized(const httplib::Request& req, httplib::Response& res) const {
    if (options.api_key.empty()) return true;
    if (req.get_header_value("Authorization") == "Bearer " + options.api_key) return true;
    send_error(res, ApiError(401, "invalid or missing API key (Authorization: Bearer KEY)", "", "authentication_error"));
    return false;
  }

  std::string token_text(int64_t id) const {
    return utf8_lossy(tokenizer.decode_bytes({static_cast<int32_t>(id)}, false));
  }

  void handle(const httplib::Request& req, httplib::Response& res, bool chat) {
    if (!authorized(req, res)) return;
    if (in_flight.fetch_add(1) >= options.max_concurrent) {
      in_flight.fetch_sub(1);
      send_error(res, ApiError(429, "too many concurrent requests (limit " + std::to_string(options.max_concurrent) +
                                        "); retry later", "", "rate_limit_error"));
      return;
    }
    bool released = false;
    auto release = [this, &released] {
      if (!released) in_flight.fetch_sub(1);
      released = true;
    };
    try {
      json body;
      try {
        body = json::parse(req.body);
      } catch (const json::exception& e) {
        throw ApiError(400, std::string("the body is not valid JSON: ") + e.what());
      }
      ApiRequest api = parse_api_request(body, chat, limits, tokenizer, format);
      auto channel = std::make_shared<Channel>();
      const int n = api.n;
      for (size_t p = 0; p < api.prompts.size(); ++p) {
        Request r;
        r.prompt = api.prompts[p];
        r.params = api.params;
        r.n = n;
        const int base = static_cast<int>(p) * n;
        std::weak_ptr<Channel> weak = channel;
        r.on_event = [weak, base](const StreamEvent& e) {
          auto ch = weak.lock();
          if (!ch) return;
          std::lock_guard<std::mutex> lock(ch->mutex);
          ch->events.push_back({base + e.sample, e.id, e.logprob, e.text_delta, e.done,
                                e.done ? *e.completion : Completion{}});
          ch->cv.notify_all();
        };
        try {
          channel->engine_ids.push_back(engine.submit(std::move(r)));
        } catch (const ApiError&) {
          throw;
        } catch (const Error& e) {
          throw ApiError(400, e.what());
        }
      }
      const int choices = static_cast<int>(api.prompts.size()) * n;
      const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(++counter);
      const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::system_clock::now().time_since_epoch()).count();
      if (!api.stream) {
        respond_whole(res, *channel, api, choices, id, created);
        release();
        return;
      }
      stream(res, channel, api, choices, id, created);
      released = true;  // the stream's releaser decrements in_flight
    } catch (const ApiError& e) {
      send_error(res, e);
      release();
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "", "server_error"));
      release();
    }
  }

  json usage(int64_t prompt_tokens, int64_t completion_tokens) const {
    return {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens}};
  }

  void respond_whole(httplib::Response& res, Channel& ch, const ApiRequest& api, int choices, const std::string& id,
                     int64_t created) {
    std::vector<Completion> done(choices);
    int remaining = choices;
    {
      std::unique_lock<std::mutex> lock(ch.mutex);
      while (remaining > 0) {
        ch.cv.wait(lock, [&] { return !ch.events.empty(); });
        while (!ch.events.empty()) {
          auto e = std::move(ch.events.front());
          ch.events.pop_front();
          if (e.done) {
            done[e.choice] = std::move(e.completion);
            --remaining;
          }
        }
      }
    }
    json out = {{"id", id}, {"object", api.chat ? "chat.completion" : "text_completion"}, {"created", created},
                {"model", options.model_name}, {"choices", json::array()}};
    int64_t prompt_tokens = 0, completion_tokens = 0;
    for (int c = 0; c < choices; ++c) {
      const Completion& comp = done[c];
      if (comp.finish_reason == "error") throw ApiError(500, "generation failed (see the server log)", "", "server_error");
      if (c % api.n == 0) prompt_tokens += comp.prompt_tokens;
      completion_tokens += static_cast<int64_t>(comp.ids.size());
      json choice = {{"index", c}, {"finish_reason", finish_reason(comp.finish_reason)}};
      json logprobs = nullptr;
      if (api.logprobs) {
        if (api.chat) {
          logprobs = {{"content", json::array()}};
          for (size_t t = 0; t < comp.ids.size(); ++t)
            logprobs["content"].push_back({{"token", token_text(comp.ids[t])}, {"logprob", comp.logprobs[t]},
                                           {"top_logprobs", json::array()}});
        } else {
          json tokens = json::array();
          for (int64_t t : comp.ids) tokens.push_back(token_text(t));
          logprobs = {{"tokens", tokens}, {"token_logprobs", comp.logprobs}};
        }
      }
      choice["logprobs"] = logprobs;
      if (api.chat) {
        ThinkSplitter split(api.prompt_opens_think);
        auto a = split.push(comp.text);
        auto b = split.finish();
        json message = {{"role", "assistant"}, {"content", a.content + b.content}};
        if (!(a.reasoning + b.reasoning).empty() || api.prompt_opens_think)
          message["reasoning_content"] = a.reasoning + b.reasoning;
        choice["message"] = message;
      } else {
        choice["text"] = comp.text;
      }
      out["choices"].push_back(choice);
    }
    out["usage"] = usage(prompt_tokens, completion_tokens);
    res.set_content(out.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }

  void stream(httplib::Response& res, std::shared_ptr<Channel> channel, const ApiRequest& api, int choices,
              const std::string& id, int64_t created) {
    struct State {
      std::vector<ThinkSplitter> splitters;
      std::vector<bool> started;
      int remaining;
      int64_t prompt_tokens = 0, completion_tokens = 0;
      bool finished = false;
    };
    auto state = std::make_shared<State>();
    for (int c = 0; c < choices; ++c) state->splitters.emplace_back(api.prompt_opens_think);
    state->started.assign(choices, false);
    state->remaining = choices;
    const std::string object = api.chat ? "chat.completion.chunk" : "text_completion";
    auto chunk = [this, id, created, object](json choice) {
      return json{{"id", id}, {"object", object}, {"created", created}, {"model", options.model_name},
                  {"choices", json::array({std::move(choice)})}};
    };
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, channel, state, api, chunk, id, created, object](size_t, httplib::DataSink& sink) {
          std::deque<Channel::Event> events;
          {
            std::unique_lock<std::mutex> lock(channel->mutex);
            channel->cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return !channel->events.empty(); });
            events.swap(channel->events);
          }
          std::string out;
          for (auto& e : events) {
            const int c = e.choice;
            if (api.chat && !state->started[c]) {
              out += sse(chunk({{"index", c}, {"delta", {{"role", "assistant"}, {"content", ""}}},
                                {"logprobs", nullptr}, {"finish_reason", nullptr}}));
              state->started[c] = true;
            }
            json logprobs = nullptr;
            if (api.logprobs && e.id >= 0) {
              logprobs = api.chat ? json{{"content", json::array({{{"token", token_text(e.id)}, {"logprob", e.logprob},
                                                                    {"top_logprobs", json::array()}}})}}
                                  : json{{"tokens", {token_text(e.id)}}, {"token_logprobs", {e.logprob}}};
            }
            std::string delta = e.delta;
            if (api.chat) {
              auto parts = state->splitters[c].push(delta);
              if (e.done) {
                auto rest = state->splitters[c].finish();
                parts.reasoning += rest.reasoning;
                parts.content += rest.content;
              }
              json d = json::object();
              if (!parts.reasoning.empty()) d["reasoning_content"] = parts.reasoning;
              if (!parts.content.empty()) d["content"] = parts.content;
              if (!d.empty() || !logprobs.is_null())
                out += sse(chunk({{"index", c}, {"delta", d}, {"logprobs", logprobs}, {"finish_reason", nullptr}}));
            } else if (!delta.empty() || !logprobs.is_null()) {
              out += sse(chunk({{"index", c}, {"text", delta}, {"logprobs", logprobs}, {"finish_reason", nullptr}}));
            }
            if (e.done) {
              if (c % api.n == 0) state->prompt_tokens += e.completion.prompt_tokens;
              state->completion_tokens += static_cast<int64_t>(e.completion.ids.size());
              const std::string reason = finish_reason(e.completion.finish_reason);
              out += sse(chunk(api.chat ? json{{"index", c}, {"delta", json::object()}, {"logprobs", nullptr},
                                               {"finish_reason", reason}}
                                        : json{{"index", c}, {"text", ""}, {"logprobs", nullptr},
                                               {"finish_reason", reason}}));
              --state->remaining;
            }
          }
          if (state->remaining == 0) {
            if (api.include_usage)
              out += sse({{"id", id}, {"object", object}, {"created", created}, {"model", options.model_name},
                          {"choices", json::array()}, {"usage", usage(state->prompt_tokens, state->completion_tokens)}});
            out += "data: [DONE]\n\n";
          }
          // A client that went away: cancel its sequences so their cache rows are freed.
          if (!out.empty() && !sink.write(out.data(), out.size())) {
            for (uint64_t eid : channel->engine_ids) engine.cancel(eid);
            return false;
          }
          if (out.empty() && !sink.is_writable()) {
            for (uint64_t eid : channel->engine_ids) engine.cancel(eid);
            return false;
          }
          if (state->remaining == 0) {
            state->finished = true;
            sink.done();
          }
          return true;
        },
        [this, channel, state](bool) {
          if (!state->finished)
            for (uint64_t eid : channel->engine_ids) engine.cancel(eid);
          in_flight.fetch_sub(1);
        });
  }

  json run_metrics() const {
    json out = {{"metrics", json::array()}, {"samples", json::array()}};
    if (options.run_dir.empty()) return out;
    for (const auto& [file, key] : {std::pair{"metrics.jsonl", "metrics"}, std::pair{"samples.jsonl", "samples"}}) {
      std::ifstream in(options.run_dir + "/" + file);
      std::string line;
      while (std::getline(in, line)) {
        try {
          out[key].push_back(json::parse(line));
        } catch (const json::exception&) {  // a line being written
        }
      }
    }
    if (out["samples"].size() > 50) out["samples"].erase(out["samples"].begin(), out["samples"].end() - 50);
    return out;
  }

  void routes() {
    http.set_payload_max_length(options.max_body_bytes);
    const int threads = options.max_concurrent + 4;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      const std::string message = res.status == 413 ? "the request body is too large"
                                  : res.status == 404 ? "no such endpoint"
                                                      : "request failed";
      res.set_content(ApiError(res.status, message).body().dump(), "application/json");
    });
    http.Post("/v1/chat/completions", [this](const httplib::Request& q, httplib::Response& r) { handle(q, r, true); });
    http.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) { handle(q, r, false); });
    http.Get("/v1/models", [this](const httplib::Request& q, httplib::Response& r) {
      if (!authorized(q, r)) return;
      r.set_content(json{{"object", "list"},
                         {"data", {{{"id", options.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "r1.cpp"},
                                    {"max_model_len", engine.max_context()},
                                    {"meta", {{"accepts_any_model_name", true}}}}}}}.dump(),
                    "application/json");
    });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& r) {
      r.set_content(json{{"status", "ok"}, {"model", options.model_name}, {"active", engine.active()},
                         {"waiting", engine.waiting()}, {"in_flight", in_flight.load()},
                         {"generated_tokens", engine.generated_tokens()}}.dump(),
                    "application/json");
    });
    http.Get("/v1/run/metrics", [this](const httplib::Request& q, httplib::Response& r) {
      if (!authorized(q, r)) return;
      r.set_content(run_metrics().dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
    });
    http.Get("/", [this](const httplib::Request&, httplib::Response& r) {
      r.set_content(kWebUiHtml, "text/html; charset=utf-8");
    });
  }
};

Server::Server(Engine& engine, const Tokenizer& tokenizer, std::optional<ChatFormat> format, ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, tokenizer, format, std::move(options))) {
  impl_->routes();
}

Server::~Server() { stop(); }

int Server::bind() {
  const auto& o = impl_->options;
  const int port = o.port == 0 ? impl_->http.bind_to_any_port(o.host) : (impl_->http.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port < 0) throw Error("cannot listen on " + o.host + ":" + std::to_string(o.port) + " (in use, or not an address here)");
  impl_->port = port;
  return port;
}

void Server::listen() {
  impl_->engine.start();
  impl_->http.listen_after_bind();
}

void Server::stop() {
  if (impl_) impl_->http.stop();
}

}  // namespace r1
