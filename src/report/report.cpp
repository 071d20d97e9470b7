#include "report/report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace r1 {
namespace {

using nlohmann::json;

std::vector<json> read_jsonl(const std::string& path) {
  std::vector<json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    try {
      json j = json::parse(line);
      if (j.is_object()) rows.push_back(std::move(j));
    } catch (const json::exception&) {  // a line being written
    }
  }
  return rows;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string number(double v) {
  char buf[32];
  if (v != 0 && (std::fabs(v) >= 1e4 || std::fabs(v) < 1e-2)) std::snprintf(buf, sizeof buf, "%.2e", v);
  else std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The chat checks of a run, when its directory has them (recipes/smollm2-r1.sh writes them):
// chat_questions.jsonl ({"prompt", "expect": word or [alternatives]}) and the greedy answers of the model before and after
// training, chat_before.jsonl / chat_after.jsonl (r1 generate's lines, in the same order). An answer
// keeps the check when it contains the expected word.
std::string chat_checks(const std::filesystem::path& run) {
  const auto questions = read_jsonl((run / "chat_questions.jsonl").string());
  const auto before = read_jsonl((run / "chat_before.jsonl").string());
  const auto after = read_jsonl((run / "chat_after.jsonl").string());
  if (questions.empty() || before.size() != questions.size() || after.size() != questions.size()) return "";
  std::string rows;
  int kept_before = 0, kept_after = 0;
  for (size_t i = 0; i < questions.size(); ++i) {
    // "expect": a word, or a list of alternatives ("7", "seven").
    const json e = questions[i].value("expect", json(""));
    std::vector<std::string> words;
    for (const auto& w : e.is_array() ? e : json::array({e}))
      if (w.is_string()) words.push_back(lower(w.get<std::string>()));
    auto keeps = [&](const std::string& answer) {
      return std::any_of(words.begin(), words.end(), [&](const std::string& w) { return lower(answer).find(w) != std::string::npos; });
    };
    std::string expect;
    for (const auto& w : words) expect += (expect.empty() ? "" : " / ") + w;
    const std::string a = before[i].value("text", ""), b = after[i].value("text", "");
    const bool ka = keeps(a), kb = keeps(b);
    kept_before += ka;
    kept_after += kb;
    rows += "<tr><td style=\"text-align:left\">" + escape(questions[i].value("prompt", "")) + "</td><td>" + escape(expect) +
            "</td><td style=\"text-align:left\">" + escape(a) + (ka ? " &#10003;" : "") +
            "</td><td style=\"text-align:left\">" + escape(b) + (kb ? " &#10003;" : "") + "</td></tr>\n";
  }
  return "<h2>Chat checks: " + std::to_string(kept_before) + "/" + std::to_string(questions.size()) + " before, " +
         std::to_string(kept_after) + "/" + std::to_string(questions.size()) +
         " after (greedy answers; &#10003;: the expected word is in it)</h2>\n<table><tr><th>question</th><th>expected</th>"
         "<th>before</th><th>after</th></tr>\n" + rows + "</table>\n";
}

// A line chart of (step, value) points as inline SVG.
std::string chart(const std::string& title, const std::vector<std::pair<double, double>>& points) {
  const double w = 360, h = 180, left = 52, bottom = 22, top = 10, right = 10;
  double x0 = points.front().first, x1 = points.back().first, y0 = points[0].second, y1 = points[0].second;
  for (const auto& [x, y] : points) {
    x0 = std::min(x0, x);
    x1 = std::max(x1, x);
    y0 = std::min(y0, y);
    y1 = std::max(y1, y);
  }
  auto sx = [&](double x) { return left + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * (w - left - right); };
  auto sy = [&](double y) { return h - bottom - (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5) * (h - bottom - top); };
  std::string line;
  char buf[64];
  for (const auto& [x, y] : points) {
    std::snprintf(buf, sizeof buf, "%.1f,%.1f ", sx(x), sy(y));
    line += buf;
  }
  std::string svg = "<figure><figcaption>" + escape(title) + "</figcaption><svg width=\"" + number(w) + "\" height=\"" +
                    number(h) + "\" role=\"img\">";
  svg += "<line x1=\"" + number(left) + "\" y1=\"" + number(h - bottom) + "\" x2=\"" + number(w - right) + "\" y2=\"" +
         number(h - bottom) + "\" stroke=\"#999\"/>";
  svg += "<polyline fill=\"none\" stroke=\"#0a66c2\" stroke-width=\"1.5\" points=\"" + line + "\"/>";
  svg += "<text x=\"2\" y=\"" + number(top + 8) + "\">" + number(y1) + "</text>";
  svg += "<text x=\"2\" y=\"" + number(h - bottom) + "\">" + number(y0) + "</text>";
  svg += "<text x=\"" + number(left) + "\" y=\"" + number(h - 6) + "\">step " + number(x0) + "</text>";
  svg += "<text x=\"" + number(w - 60) + "\" y=\"" + number(h - 6) + "\">" + number(x1) + "</text>";
  return svg + "</svg></figure>\n";
}

}  // namespace

std::string render_run_report(const std::string& run_dir) {
  namespace fs = std::filesystem;
  const fs::path metrics_path = fs::path(run_dir) / "metrics.jsonl";
  if (!fs::exists(metrics_path)) throw Error(run_dir + ": no metrics.jsonl (is it a run directory?)");
  const auto metrics = read_jsonl(metrics_path.string());
  if (metrics.empty()) throw Error(metrics_path.string() + ": no metrics lines");
  const auto samples = read_jsonl((fs::path(run_dir) / "samples.jsonl").string());
  std::string stage = metrics.back().value("stage", "pretrain");
  if (stage == "grpo_eval") stage = "grpo";  // a GRPO run's last line may be its held-out evaluation
  const bool rl = stage == "grpo";
  const std::vector<std::string> series =
      rl ? std::vector<std::string>{"heldout_accuracy", "heldout_boxed_rate", "reward", "accuracy", "format_rate", "completion_length", "truncation_rate", "kl",
                                    "entropy", "clip_low", "clip_high", "zero_variance_groups", "rollouts_trained",
                                    "rollout_logprob_diff", "rollout_weight", "off_policy_masked", "rank_imbalance",
                                    "grad_norm", "lr"}
         : std::vector<std::string>{"loss", "val_loss", "val_bpb", "lr", "grad_norm", "tokens_per_s", "mfu"};
  std::string html =
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>r1 report: " + escape(run_dir) +
      "</title><style>body{font:14px system-ui,sans-serif;margin:24px;color:#1d1d1f}figure{display:inline-block;"
      "margin:0 16px 16px 0;border:1px solid #ddd;padding:6px}figcaption{font-weight:600}svg text{font-size:10px}"
      "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}"
      "pre{white-space:pre-wrap;background:#f6f6f6;padding:8px;max-width:1000px}</style></head><body>\n";
  html += "<h1>" + escape(stage) + " run: " + escape(run_dir) + "</h1>\n";
  // Summary: first and last value of each series.
  html += "<table><tr><th>metric</th><th>first</th><th>last</th></tr>\n";
  std::string charts;
  for (const auto& name : series) {
    std::vector<std::pair<double, double>> points;
    for (const auto& m : metrics)
      if (m.contains(name) && m[name].is_number() && m.contains("step")) points.emplace_back(m["step"].get<double>(), m[name].get<double>());
    if (points.empty()) continue;
    html += "<tr><th>" + escape(name) + "</th><td>" + number(points.front().second) + "</td><td>" +
            number(points.back().second) + "</td></tr>\n";
    charts += chart(name, points);
  }
  html += "</table>\n" + chat_checks(run_dir) + "<h2>Curves</h2>\n" + charts;
  if (!samples.empty()) {
    // Samples from early, middle and late steps.
    std::vector<int64_t> steps;
    for (const auto& s : samples) steps.push_back(s.value("step", int64_t(0)));
    std::vector<int64_t> distinct = steps;
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    std::map<int64_t, std::string> chosen = {{distinct.front(), "early"}, {distinct[distinct.size() / 2], "middle"},
                                             {distinct.back(), "late"}};
    html += "<h2>Samples</h2>\n";
    for (const auto& [step, when] : chosen) {
      html += "<h3>" + when + ": step " + std::to_string(step) + "</h3>\n";
      int shown = 0;
      for (const auto& s : samples) {
        if (s.value("step", int64_t(0)) != step || shown++ >= 3) continue;
        std::string text;
        if (s.contains("prompt")) text += "prompt: " + s["prompt"].get<std::string>() + "\n";
        if (s.contains("completion")) text += "completion: " + s["completion"].get<std::string>() + "\n";
        for (const char* key : {"reward", "advantage"})
          if (s.contains(key) && s[key].is_number()) text += std::string(key) + ": " + number(s[key].get<double>()) + "\n";
        html += "<pre>" + escape(text) + "</pre>\n";
      }
    }
  }
  return html + "</body></html>\n";
}

}  // namespace r1
