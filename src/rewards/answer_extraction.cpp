#include "rewards/answer_extraction.h"

#include <algorithm>
#include <cctype>

namespace r1 {
namespace {

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

// Case-insensitive find of `needle` (ASCII) from the end.
size_t rfind_nocase(std::string_view text, std::string_view needle) {
  if (needle.size() > text.size()) return std::string_view::npos;
  for (size_t i = text.size() - needle.size() + 1; i-- > 0;) {
    bool ok = true;
    for (size_t k = 0; k < needle.size() && ok; ++k)
      ok = std::tolower(static_cast<unsigned char>(text[i + k])) == std::tolower(static_cast<unsigned char>(needle[k]));
    if (ok) return i;
  }
  return std::string_view::npos;
}

// The number starting at or after `from` (digits with optional sign, commas, decimals).
std::string number_at(std::string_view s, size_t from) {
  size_t i = from;
  while (i < s.size() && !(std::isdigit(static_cast<unsigned char>(s[i])) ||
                           ((s[i] == '-' || s[i] == '.') && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))))
    ++i;
  size_t j = i;
  if (j < s.size() && s[j] == '-') ++j;
  while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == ',' || s[j] == '.')) ++j;
  std::string n(s.substr(i, j - i));
  while (!n.empty() && (n.back() == '.' || n.back() == ',')) n.pop_back();
  return n;
}

}  // namespace

std::vector<std::string> boxed_contents(std::string_view text) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < text.size();) {
    size_t at = std::string_view::npos;
    size_t skip = 0;
    for (std::string_view cmd : {"\\boxed", "\\fbox"}) {
      const size_t p = text.find(cmd, pos);
      if (p < at) {
        at = p;
        skip = cmd.size();
      }
    }
    if (at == std::string_view::npos) break;
    size_t i = at + skip;
    while (i < text.size() && text[i] == ' ') ++i;
    if (i < text.size() && text[i] == '{') {
      int depth = 1;
      size_t j = i + 1;
      for (; j < text.size() && depth > 0; ++j) {
        if (text[j] == '\\' && j + 1 < text.size()) {  // \{ and \} do not count
          ++j;
          continue;
        }
        if (text[j] == '{') ++depth;
        if (text[j] == '}') --depth;
      }
      if (depth == 0) out.push_back(trim(text.substr(i + 1, j - i - 2)));
      pos = j;
    } else if (i > at + skip && i < text.size()) {
      // "\boxed 5": up to the next space, $ or end.
      size_t j = i;
      while (j < text.size() && text[j] != '$' && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
      if (j > i) out.push_back(std::string(text.substr(i, j - i)));
      pos = j;
    } else {
      pos = i;
    }
  }
  return out;
}

ExtractedAnswer extract_answer(std::string_view text, const ExtractOptions& o) {
  ExtractedAnswer a;
  a.source = "none";
  if (o.boxed) {
    a.all_boxed = boxed_contents(text);
    if (!a.all_boxed.empty()) {
      a.text = a.all_boxed.back();
      a.source = "boxed";
      return a;
    }
  }
  if (o.answer_tag) {
    const size_t close = text.rfind("</answer>");
    const size_t open = close == std::string_view::npos ? std::string_view::npos : text.rfind("<answer>", close);
    if (open != std::string_view::npos) {
      a.text = trim(text.substr(open + 8, close - open - 8));
      // An <answer> holding a boxed expression: the box's contents.
      const auto inner = boxed_contents(a.text);
      if (!inner.empty()) a.text = inner.back();
      a.source = "answer_tag";
      return a;
    }
  }
  if (o.gsm8k) {
    const size_t hashes = text.rfind("####");
    if (hashes != std::string_view::npos) {
      std::string rest = trim(text.substr(hashes + 4));
      const size_t eol = rest.find('\n');
      if (eol != std::string::npos) rest = trim(rest.substr(0, eol));
      if (!rest.empty()) {
        a.text = rest;
        a.source = "gsm8k";
        return a;
      }
    }
  }
  if (o.answer_is) {
    for (std::string_view phrase : {"final answer is", "answer is"}) {
      const size_t at = rfind_nocase(text, phrase);
      if (at == std::string_view::npos) continue;
      std::string rest(text.substr(at + phrase.size()));
      // Up to the end of the sentence: a period followed by space/end, or a newline.
      size_t end = rest.size();
      for (size_t i = 0; i < rest.size(); ++i) {
        if (rest[i] == '\n' || (rest[i] == '.' && (i + 1 == rest.size() || std::isspace(static_cast<unsigned char>(rest[i + 1]))))) {
          end = i;
          break;
        }
      }
      std::string answer = trim(std::string_view(rest).substr(0, end));
      if (!answer.empty() && answer[0] == ':') answer = trim(std::string_view(answer).substr(1));
      if (answer.size() >= 2 && answer.front() == '$' && answer.back() == '$') answer = trim(std::string_view(answer).substr(1, answer.size() - 2));
      if (!answer.empty()) {
        a.text = answer;
        a.source = "answer_is";
        return a;
      }
    }
  }
  if (o.last_number) {
    for (size_t i = text.size(); i-- > 0;) {
      if (!std::isdigit(static_cast<unsigned char>(text[i]))) continue;
      size_t start = i;
      while (start > 0 && (std::isdigit(static_cast<unsigned char>(text[start - 1])) || text[start - 1] == '.' ||
                           text[start - 1] == ',' || text[start - 1] == '-'))
        --start;
      a.text = number_at(text, start);
      a.source = "last_number";
      return a;
    }
  }
  return a;
}

}  // namespace r1
