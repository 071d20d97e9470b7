#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenizer.h"

#include <pcre2.h>

#include <algorithm>

#include "util/error.h"

namespace r1 {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

pcre2_code* code_of(void* p) { return static_cast<pcre2_code*>(p); }

// One match-data block per thread, reused across calls (group 0 is all we read).
pcre2_match_data* thread_match_data() {
  struct Holder {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    ~Holder() { pcre2_match_data_free(data); }
  };
  thread_local Holder holder;
  return holder.data;
}

SplitBehavior parse_behavior(const std::string& name, const std::string& origin) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  throw Error(origin + ": Split behavior '" + name + "' is not supported");
}

const char* behavior_name(SplitBehavior b) {
  switch (b) {
    case SplitBehavior::kRemoved: return "Removed";
    case SplitBehavior::kIsolated: return "Isolated";
    case SplitBehavior::kMergedWithPrevious: return "MergedWithPrevious";
    case SplitBehavior::kMergedWithNext: return "MergedWithNext";
    case SplitBehavior::kContiguous: return "Contiguous";
  }
  return "Isolated";
}

bool json_bool(const nlohmann::json& j, const char* key, bool fallback) {
  return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : fallback;
}

}  // namespace

Regex::Regex(const std::string& pattern) : pattern_(pattern) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err,
                        &offset, nullptr);
  if (!code_) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error("regex '" + pattern + "' does not compile at offset " + std::to_string(offset) + ": " +
                reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code_of(code_), PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
}

Regex::~Regex() { pcre2_code_free(code_of(code_)); }

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  pcre2_match_data* md = thread_match_data();
  size_t start = 0;
  while (start <= text.size()) {
    // The tokenizer passes valid UTF-8 only, so the check after the first call is redundant.
    int rc = pcre2_match(code_of(code_), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start,
                         start == 0 ? 0 : PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    if (e == b) {  // empty match: step one code point forward
      size_t next = b + 1;
      while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) ++next;
      start = next;
      continue;
    }
    out.emplace_back(b, e);
    start = e;
  }
  return out;
}

SplitPreTokenizer::SplitPreTokenizer(const std::string& pattern, SplitBehavior behavior, bool invert)
    : regex_(pattern), behavior_(behavior), invert_(invert) {}

void SplitPreTokenizer::split(std::vector<std::string>& pieces) const {
  std::vector<std::string> out;
  out.reserve(pieces.size() * 2);
  for (const std::string& piece : pieces) {
    // Spans of the piece, each marked as a delimiter (regex match, or non-match when inverted).
    std::vector<std::pair<std::pair<size_t, size_t>, bool>> spans;
    size_t cursor = 0;
    for (auto [b, e] : regex_.find_all(piece)) {
      if (b > cursor) spans.push_back({{cursor, b}, invert_});
      spans.push_back({{b, e}, !invert_});
      cursor = e;
    }
    if (cursor < piece.size()) spans.push_back({{cursor, piece.size()}, invert_});
    std::string pending;  // for MergedWithNext
    bool last_was_delim = false;
    const size_t first_out = out.size();
    for (const auto& [range, is_delim] : spans) {
      std::string text = piece.substr(range.first, range.second - range.first);
      switch (behavior_) {
        case SplitBehavior::kRemoved:
          if (!is_delim) out.push_back(std::move(text));
          break;
        case SplitBehavior::kIsolated:
          out.push_back(std::move(text));
          break;
        case SplitBehavior::kMergedWithPrevious:
          if (is_delim && out.size() > first_out && !last_was_delim) out.back() += text;
          else out.push_back(std::move(text));
          break;
        case SplitBehavior::kMergedWithNext:
          if (is_delim) {
            pending += text;
          } else {
            out.push_back(pending + text);
            pending.clear();
          }
          break;
        case SplitBehavior::kContiguous:
          if (is_delim && last_was_delim && out.size() > first_out) out.back() += text;
          else out.push_back(std::move(text));
          break;
      }
      last_was_delim = is_delim;
    }
    if (!pending.empty()) out.push_back(std::move(pending));
  }
  out.erase(std::remove_if(out.begin(), out.end(), [](const std::string& s) { return s.empty(); }), out.end());
  pieces.swap(out);
}

nlohmann::json SplitPreTokenizer::to_json() const {
  return {{"type", "Split"}, {"pattern", {{"Regex", regex_.pattern()}}}, {"behavior", behavior_name(behavior_)},
          {"invert", invert_}};
}

ByteLevelPreTokenizer::ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, bool trim_offsets)
    : add_prefix_space_(add_prefix_space), use_regex_(use_regex), trim_offsets_(trim_offsets) {
  if (use_regex_) regex_split_ = std::make_unique<SplitPreTokenizer>(kGpt2Pattern, SplitBehavior::kIsolated, false);
}

void ByteLevelPreTokenizer::split(std::vector<std::string>& pieces) const {
  if (add_prefix_space_)
    for (auto& p : pieces)
      if (p.empty() || p[0] != ' ') p.insert(p.begin(), ' ');
  if (regex_split_) regex_split_->split(pieces);
}

nlohmann::json ByteLevelPreTokenizer::to_json() const {
  return {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space_}, {"trim_offsets", trim_offsets_},
          {"use_regex", use_regex_}};
}

void SequencePreTokenizer::split(std::vector<std::string>& pieces) const {
  for (const auto& step : steps_) step->split(pieces);
}

nlohmann::json SequencePreTokenizer::to_json() const {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : steps_) steps.push_back(s->to_json());
  return {{"type", "Sequence"}, {"pretokenizers", steps}};
}

std::unique_ptr<PreTokenizer> pretokenizer_from_json(const nlohmann::json& j, const std::string& origin,
                                                     bool* has_byte_level) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw Error(origin + ": pre_tokenizer must be an object with a 'type'");
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      throw Error(origin + ": Sequence pre_tokenizer needs a 'pretokenizers' list");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& s : j["pretokenizers"]) steps.push_back(pretokenizer_from_json(s, origin, has_byte_level));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "Split") {
    const auto& pat = j.value("pattern", nlohmann::json());
    std::string regex;
    if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string()) {
      regex = pat["Regex"].get<std::string>();
    } else if (pat.is_object() && pat.contains("String") && pat["String"].is_string()) {
      // A literal: quote it for PCRE2.
      regex = "\\Q" + pat["String"].get<std::string>() + "\\E";
    } else {
      throw Error(origin + ": Split pre_tokenizer needs pattern {\"Regex\": ...} or {\"String\": ...}");
    }
    try {
      return std::make_unique<SplitPreTokenizer>(regex, parse_behavior(j.value("behavior", "Isolated"), origin),
                                                 json_bool(j, "invert", false));
    } catch (const Error& e) {
      throw Error(origin + ": Split pre_tokenizer: " + e.what());
    }
  }
  if (type == "Digits") {
    const bool individual = json_bool(j, "individual_digits", false);
    return std::make_unique<SplitPreTokenizer>(individual ? "\\p{N}" : "\\p{N}+", SplitBehavior::kIsolated, false);
  }
  if (type == "ByteLevel") {
    if (has_byte_level) *has_byte_level = true;
    return std::make_unique<ByteLevelPreTokenizer>(json_bool(j, "add_prefix_space", false),
                                                   json_bool(j, "use_regex", true), json_bool(j, "trim_offsets", true));
  }
  throw Error(origin + ": pre_tokenizer type '" + type +
              "' is not supported (supported: Sequence, Split, Digits, ByteLevel)");
}

}  // namespace r1
