#include "serve/reasoning.h"

namespace r1 {
namespace {

const std::string kOpen = "<think>", kClose = "</think>";

// Length of the longest suffix of `text` that is a proper prefix of `tag` (a tag that may still
// be completing).
size_t partial_tag(const std::string& text, const std::string& tag) {
  for (size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n)
    if (text.compare(text.size() - n, n, tag, 0, n) == 0) return n;
  return 0;
}

}  // namespace

ThinkSplitter::Parts ThinkSplitter::push(const std::string& delta) {
  pending_ += delta;
  return drain(false);
}

ThinkSplitter::Parts ThinkSplitter::finish() { return drain(true); }

ThinkSplitter::Parts ThinkSplitter::drain(bool final) {
  Parts out;
  while (!pending_.empty()) {
    if (at_start_) {
      // An answer may open with <think> (after optional whitespace).
      const size_t first = pending_.find_first_not_of(" \t\r\n");
      if (first == std::string::npos) {
        if (!final) return out;
        out.content += pending_;
        pending_.clear();
        break;
      }
      const std::string rest = pending_.substr(first);
      if (rest.compare(0, kOpen.size(), kOpen) == 0) {
        pending_ = rest.substr(kOpen.size());
        in_think_ = true;
        at_start_ = false;
        continue;
      }
      if (!final && kOpen.compare(0, rest.size(), rest) == 0) return out;  // "<thi" so far
      at_start_ = false;
    }
    if (in_think_) {
      const size_t close = pending_.find(kClose);
      if (close != std::string::npos) {
        out.reasoning += pending_.substr(0, close);
        pending_ = pending_.substr(close + kClose.size());
        in_think_ = false;
        after_close_ = true;
        continue;
      }
      const size_t keep = final ? 0 : partial_tag(pending_, kClose);
      out.reasoning += pending_.substr(0, pending_.size() - keep);
      pending_.erase(0, pending_.size() - keep);
      return out;
    }
    if (after_close_) {
      // DeepSeek's template puts "\n\n" after </think>: not part of the answer.
      const size_t body = pending_.find_first_not_of("\r\n");
      if (body == std::string::npos) {
        pending_.clear();
        return out;
      }
      pending_.erase(0, body);
      after_close_ = false;
    }
    out.content += pending_;
    pending_.clear();
  }
  return out;
}

}  // namespace r1
