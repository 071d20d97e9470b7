#include "rewards/math_verifier.h"

#include <ginac/ginac.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>
#include <vector>

namespace r1 {
namespace {

// ---------------------------------------------------------------------------------------------
// Normalisation

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

// \text{abc} -> abc for each command in `commands` (braces matched).
void unwrap_commands(std::string& s, std::initializer_list<std::string_view> commands) {
  for (std::string_view cmd : commands) {
    for (size_t at = s.find(cmd); at != std::string::npos; at = s.find(cmd, at)) {
      size_t open = at + cmd.size();
      while (open < s.size() && s[open] == ' ') ++open;
      if (open >= s.size() || s[open] != '{') {
        s.erase(at, cmd.size());
        continue;
      }
      int depth = 1;
      size_t close = open + 1;
      for (; close < s.size() && depth > 0; ++close) depth += s[close] == '{' ? 1 : s[close] == '}' ? -1 : 0;
      if (depth != 0) return;
      s = s.substr(0, at) + s.substr(open + 1, close - open - 2) + s.substr(close);
    }
  }
}

std::string strip(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

const std::regex& unit_words() {
  static const std::regex re(
      "\\s*(square|sq\\.?|cubic)?\\s*(units?|cm|centimeters?|m|meters?|km|kilometers?|mm|inch(es)?|in|feet|foot|ft|"
      "yards?|miles?|mph|degrees?|dollars?|cents?|hours?|hrs?|minutes?|mins?|seconds?|sec|days?|weeks?|months?|years?|"
      "pounds?|lbs?|ounces?|oz|grams?|g|kg|kilograms?|liters?|l|ml|gallons?|people|students|ways|points?|"
      "percent|times|calories|apples|marbles|cookies|books|pages|items|boxes|tickets)\\s*(\\^?\\{?[23]\\}?)?\\s*$",
      std::regex::icase);
  return re;
}

}  // namespace

namespace {

std::string normalize(std::string_view answer, bool strip_assignment) {
  std::string s(answer);
  replace_all(s, "\\\\", "\x01");  // matrix row breaks, kept apart from "\ " and "\,"
  replace_all(s, "\\$", "");  // before "$" (math mode) goes
  for (std::string_view drop : {"\\displaystyle", "\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "~", "$",
                                "\\limits", "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\big", "\\Big"})
    replace_all(s, drop, drop == "\\ " || drop == "~" ? " " : "");
  for (std::string_view frac : {"\\dfrac", "\\tfrac"}) replace_all(s, frac, "\\frac");
  for (std::string_view deg : {"^{\\circ}", "^\\circ", "\\circ", "°", "\\degree"}) replace_all(s, deg, "");
  replace_all(s, "\\%", "");
  replace_all(s, "%", "");
  replace_all(s, "\\$", "");
  replace_all(s, "\\le ", "\\leq ");
  replace_all(s, "\\ge ", "\\geq ");
  unwrap_commands(s, {"\\textbf", "\\textit", "\\text", "\\mathrm", "\\mathbf", "\\mathit", "\\mbox", "\\operatorname",
                      "\\boxed"});
  s = strip(s);
  while (!s.empty() && (s.back() == '.' || s.back() == ',')) s = strip(s.substr(0, s.size() - 1));
  // Units after a number ("5 cm", "12 square units", "30 degrees").
  std::smatch m;
  if (std::regex_search(s, m, unit_words()) && m.position(0) > 0) {
    const std::string before = strip(s.substr(0, m.position(0)));
    if (!before.empty() && (std::isdigit(static_cast<unsigned char>(before.back())) || before.back() == '}' ||
                            before.back() == ')'))
      s = before;
  }
  // "x = 5", "k=-3": the value (only for one simple variable and a single '=').
  static const std::regex assignment("^\\s*[a-zA-Z](_\\{?[a-zA-Z0-9]+\\}?)?\\s*=\\s*([^=]+)$");
  if (strip_assignment && std::regex_match(s, m, assignment) && s.find('<') == std::string::npos &&
      s.find('>') == std::string::npos)
    s = strip(m[2].str());
  // Thousands separators: 1,234,567 (whole number groups of three) -> 1234567.
  static const std::regex thousands("(^|[^0-9.,])(-?[0-9]{1,3}(,[0-9]{3})+)(\\.[0-9]+)?(?=$|[^0-9,])");
  std::string out;
  auto begin = s.cbegin();
  for (std::sregex_iterator it(s.begin(), s.end(), thousands), end; it != end; ++it) {
    out.append(begin, (*it)[2].first);
    std::string digits = (*it)[2].str();
    digits.erase(std::remove(digits.begin(), digits.end(), ','), digits.end());
    out += digits;
    begin = (*it)[2].second;
  }
  out.append(begin, s.cend());
  // A trailing ".0", ".00" on a plain number.
  static const std::regex zeros("^(-?[0-9]+)\\.0+$");
  if (std::regex_match(out, m, zeros)) out = m[1].str();
  replace_all(out, "\x01", "\\\\");
  return strip(out);
}

}  // namespace

std::string normalize_math_answer(std::string_view answer) { return normalize(answer, true); }

namespace {

std::string without_spaces(const std::string& s) {
  std::string out;
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c))) out += c;
  return out;
}

// ---------------------------------------------------------------------------------------------
// LaTeX expressions -> GiNaC

struct TooLarge : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Token {
  enum Kind { kNumber, kLetter, kCommand, kSymbol, kEnd } kind;
  std::string text;
};

std::vector<Token> tokenize(const std::string& s) {
  std::vector<Token> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    if (std::isspace(c)) {
      ++i;
    } else if (std::isdigit(c) || (c == '.' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      size_t j = i;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.')) ++j;
      out.push_back({Token::kNumber, s.substr(i, j - i)});
      i = j;
    } else if (std::isalpha(c)) {
      out.push_back({Token::kLetter, std::string(1, static_cast<char>(c))});
      ++i;
    } else if (c == '\\') {
      size_t j = i + 1;
      while (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]))) ++j;
      if (j == i + 1 && j < s.size()) ++j;  // \{ \} \, ...
      out.push_back({Token::kCommand, s.substr(i, j - i)});
      i = j;
    } else {
      out.push_back({Token::kSymbol, std::string(1, static_cast<char>(c))});
      ++i;
    }
  }
  out.push_back({Token::kEnd, ""});
  return out;
}

class ExprParser {
 public:
  ExprParser(const std::string& text, std::map<std::string, GiNaC::symbol>& symbols)
      : tokens_(tokenize(text)), symbols_(symbols) {}

  GiNaC::ex parse() {
    GiNaC::ex e = expr();
    if (peek().kind != Token::kEnd) throw ParseError("unexpected '" + peek().text + "'");
    return e;
  }

 private:
  const Token& peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  Token take() { return tokens_[std::min(pos_++, tokens_.size() - 1)]; }
  bool is(const char* text) const { return peek().text == text && peek().kind != Token::kEnd; }
  bool accept(const char* text) {
    if (!is(text)) return false;
    ++pos_;
    return true;
  }
  void expect(const char* text) {
    if (!accept(text)) throw ParseError(std::string("expected '") + text + "'");
  }

  struct Depth {
    explicit Depth(int& d) : d_(d) {
      if (++d_ > 200) throw TooLarge("nested too deeply");
    }
    ~Depth() { --d_; }
    int& d_;
  };

  GiNaC::ex symbol(const std::string& name) {
    auto it = symbols_.find(name);
    if (it == symbols_.end()) it = symbols_.emplace(name, GiNaC::symbol(name)).first;
    return it->second;
  }

  GiNaC::ex expr() {
    Depth d(depth_);
    GiNaC::ex e = term();
    while (true) {
      if (accept("+")) e = e + term();
      else if (accept("-")) e = e - term();
      else return e;
    }
  }

  bool starts_atom() const {
    const Token& t = peek();
    if (t.kind == Token::kNumber || t.kind == Token::kLetter) return true;
    if (t.kind == Token::kSymbol) return t.text == "(" || t.text == "[" || t.text == "{";
    if (t.kind == Token::kCommand)
      return t.text != "\\cdot" && t.text != "\\times" && t.text != "\\div" && t.text != "\\pm" && t.text != "\\mp" &&
             t.text != "\\}" && t.text != "\\cup" && t.text != "\\cap";
    return false;
  }

  GiNaC::ex term() {
    GiNaC::ex e = unary();
    while (true) {
      if (accept("*") || accept("\\cdot") || accept("\\times")) e = e * unary();
      else if (accept("/") || accept("\\div")) e = e / unary();
      else if (starts_atom()) e = e * power();  // implicit multiplication: 2x, 3\sqrt{2}, x(y+1)
      else return e;
    }
  }

  GiNaC::ex unary() {
    Depth d(depth_);
    if (accept("-")) return -unary();
    if (accept("+")) return unary();
    return power();
  }

  GiNaC::ex checked_power(const GiNaC::ex& base, const GiNaC::ex& exponent) {
    // Refuse what would build enormous numbers or expressions (9^{9^{9^9}}, (x+1)^{10^6}).
    if (GiNaC::is_a<GiNaC::numeric>(exponent)) {
      const GiNaC::numeric n = GiNaC::ex_to<GiNaC::numeric>(exponent);
      const bool trivial_base = base.is_zero() || base.is_equal(1) || base.is_equal(-1);
      if (!trivial_base && n.is_real() && GiNaC::abs(n) > (GiNaC::is_a<GiNaC::numeric>(base) ? 4096 : 64))
        throw TooLarge("exponent too large");
    }
    return GiNaC::pow(base, exponent);
  }

  GiNaC::ex power() {
    GiNaC::ex base = postfix();
    if (accept("^")) return checked_power(base, exponent_operand());
    return base;
  }

  // The operand of ^ or of \frac/\sqrt without braces: a group, or one token.
  GiNaC::ex exponent_operand() {
    if (is("{")) return group("{", "}");
    if (accept("-")) return -exponent_operand();
    const Token t = peek();
    if (t.kind == Token::kNumber && t.text.size() > 1 && t.text.find('.') == std::string::npos) {
      // x^23 in LaTeX is x^2 3: one digit.
      ++pos_;
      tokens_.insert(tokens_.begin() + static_cast<long>(pos_), Token{Token::kNumber, t.text.substr(1)});
      return number(t.text.substr(0, 1));
    }
    return postfix();
  }

  GiNaC::ex group(const char* open, const char* close) {
    expect(open);
    GiNaC::ex e = expr();
    expect(close);
    return e;
  }

  GiNaC::ex postfix() {
    GiNaC::ex e = atom();
    while (accept("!")) {
      if (!GiNaC::is_a<GiNaC::numeric>(e) || !GiNaC::ex_to<GiNaC::numeric>(e).is_nonneg_integer() ||
          GiNaC::ex_to<GiNaC::numeric>(e) > 1000)
        throw TooLarge("factorial of a large or non-integer number");
      e = GiNaC::factorial(e);
    }
    return e;
  }

  static GiNaC::ex number(const std::string& text) {
    if (text.size() > 400) throw TooLarge("number too long");
    const size_t dot = text.find('.');
    if (dot == std::string::npos) return GiNaC::numeric(text.c_str());
    if (text.find('.', dot + 1) != std::string::npos) throw ParseError("malformed number " + text);
    // Decimals as exact rationals: 0.35625 = 35625/100000 equals 57/160 exactly.
    const std::string digits = text.substr(0, dot) + text.substr(dot + 1);
    GiNaC::numeric n(digits.empty() ? "0" : digits.c_str());
    return n / GiNaC::pow(GiNaC::numeric(10), GiNaC::numeric(static_cast<long>(text.size() - dot - 1)));
  }

  GiNaC::ex function_argument() {
    if (is("(") || is("{") || is("[")) return atom();
    return power();  // \sin x, \sin 2x -> sin(2) x? LaTeX convention: \sin 2x = sin(2x)
  }

  GiNaC::ex atom() {
    Depth d(depth_);
    const Token t = take();
    switch (t.kind) {
      case Token::kNumber:
        return number(t.text);
      case Token::kLetter: {
        if (t.text == "i") return GiNaC::I;
        if (t.text == "e" && !is("_")) return GiNaC::exp(GiNaC::ex(1));  // Euler's number (e_1 is a name)
        if (t.text == "p" && peek().kind == Token::kLetter && peek().text == "i") {  // "pi" written without \pi
          ++pos_;
          return GiNaC::Pi;
        }
        std::string name = t.text;
        if (accept("_")) {  // x_1, a_{n+1}
          if (is("{")) {
            ++pos_;
            while (!is("}") && peek().kind != Token::kEnd) name += take().text;
            expect("}");
          } else {
            name += "_" + take().text;
          }
        }
        return symbol(name);
      }
      case Token::kSymbol:
        if (t.text == "(") return close_group(")");
        if (t.text == "[") return close_group("]");
        if (t.text == "{") return close_group("}");
        if (t.text == "|") {
          GiNaC::ex inside = expr();
          expect("|");
          return GiNaC::abs(inside);
        }
        throw ParseError("unexpected '" + t.text + "'");
      case Token::kCommand:
        return command(t.text);
      case Token::kEnd:
        break;
    }
    throw ParseError("unexpected end");
  }

  GiNaC::ex close_group(const char* close) {
    GiNaC::ex e = expr();
    expect(close);
    return e;
  }

  GiNaC::ex command(const std::string& c) {
    if (c == "\\frac" || c == "\\cfrac") {
      GiNaC::ex num = exponent_operand();
      GiNaC::ex den = exponent_operand();
      if (den.is_zero()) throw ParseError("division by zero");
      return num / den;
    }
    if (c == "\\sqrt") {
      if (accept("[")) {
        GiNaC::ex index = expr();
        expect("]");
        return checked_power(exponent_operand(), 1 / index);
      }
      return GiNaC::sqrt(exponent_operand());
    }
    if (c == "\\pi") return GiNaC::Pi;
    if (c == "\\infty" || c == "\\infinity") return symbol("oo");
    if (c == "\\{") return close_group("\\}");
    static const std::map<std::string, int> functions = {
        {"\\sin", 0}, {"\\cos", 1}, {"\\tan", 2}, {"\\ln", 3}, {"\\log", 3}, {"\\lg", 3}, {"\\exp", 4},
        {"\\arcsin", 5}, {"\\arccos", 6}, {"\\arctan", 7}, {"\\sec", 8}, {"\\csc", 9}, {"\\cot", 10}};
    const auto f = functions.find(c);
    if (f != functions.end()) {
      // \ln is natural; \log_b has base b; a bare \log (and \lg) is base 10, as competition answers
      // (and math-verify) read it.
      std::optional<GiNaC::ex> base;
      if (c == "\\log" && accept("_")) base = exponent_operand();
      else if (c == "\\log" || c == "\\lg") base = GiNaC::ex(10);
      std::optional<GiNaC::ex> power_of;
      if (accept("^")) power_of = exponent_operand();  // \sin^2 x
      GiNaC::ex x = function_argument();
      GiNaC::ex v;
      switch (f->second) {
        case 0: v = GiNaC::sin(x); break;
        case 1: v = GiNaC::cos(x); break;
        case 2: v = GiNaC::tan(x); break;
        case 3: v = base ? GiNaC::log(x) / GiNaC::log(*base) : GiNaC::log(x); break;
        case 4: v = GiNaC::exp(x); break;
        case 5: v = GiNaC::asin(x); break;
        case 6: v = GiNaC::acos(x); break;
        case 7: v = GiNaC::atan(x); break;
        case 8: v = 1 / GiNaC::cos(x); break;
        case 9: v = 1 / GiNaC::sin(x); break;
        default: v = 1 / GiNaC::tan(x); break;
      }
      return power_of ? checked_power(v, *power_of) : v;
    }
    // Greek letters and other names: symbols.
    if (c.size() > 2) return symbol(c.substr(1));
    throw ParseError("unknown command " + c);
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::map<std::string, GiNaC::symbol>& symbols_;
};

// ---------------------------------------------------------------------------------------------
// Comparing scalars

std::chrono::steady_clock::time_point deadline_after(const MathVerifyOptions& o) {
  return std::chrono::steady_clock::now() +
         std::chrono::microseconds(static_cast<int64_t>(o.time_limit_s * 1e6));
}

struct Compare {
  const MathVerifyOptions& options;
  std::map<std::string, GiNaC::symbol> symbols;
  std::chrono::steady_clock::time_point deadline;

  GiNaC::ex parse(const std::string& s) {
    // A mixed number: 15\frac{39}{40}, 137 \frac{1}{2}.
    static const std::regex mixed("^(-?)([0-9]+)\\s*\\\\frac\\{?([0-9]+)\\}?\\{?([0-9]+)\\}?$");
    std::smatch m;
    if (std::regex_match(s, m, mixed)) {
      GiNaC::ex v = GiNaC::numeric(m[2].str().c_str()) +
                    GiNaC::numeric(m[3].str().c_str()) / GiNaC::numeric(m[4].str().c_str());
      return m[1].str().empty() ? v : -v;
    }
    check_time();
    return ExprParser(s, symbols).parse();
  }

  static std::optional<GiNaC::numeric> value(const GiNaC::ex& e) {
    try {
      const GiNaC::ex v = e.evalf();
      if (GiNaC::is_a<GiNaC::numeric>(v)) return GiNaC::ex_to<GiNaC::numeric>(v);
    } catch (const std::exception&) {  // division by zero at a sample point, ...
    }
    return std::nullopt;
  }

  bool close(const GiNaC::numeric& a, const GiNaC::numeric& b) const {
    const GiNaC::numeric scale = std::max(GiNaC::numeric(1), std::max(GiNaC::abs(a), GiNaC::abs(b)));
    return GiNaC::abs(a - b) <= scale * GiNaC::numeric(options.rel_tolerance);
  }

  void check_time() const {
    if (std::chrono::steady_clock::now() > deadline) throw TooLarge("time limit");
  }

  // x / y is the same non-zero constant at several random points.
  bool proportional(const std::string& a, const std::string& b) {
    try {
      const GiNaC::ex x = parse(a), y = parse(b);
      GiNaC::lst free;
      for (const auto& [name, sym] : symbols)
        if (x.has(sym) || y.has(sym)) free.append(sym);
      if (free.nops() == 0) return false;
      std::optional<GiNaC::numeric> ratio;
      int agreed = 0;
      for (int trial = 0; trial < 4; ++trial) {
        check_time();
        GiNaC::exmap at;
        int k = 0;
        for (const auto& sym : free) at[sym] = GiNaC::numeric(41 + 89 * trial + 53 * k++, 89);
        const auto u = value(x.subs(at)), v = value(y.subs(at));
        if (!u || !v || v->is_zero()) continue;
        const GiNaC::numeric r = *u / *v;
        if (r.is_zero() || (ratio && !close(r, *ratio))) return false;
        ratio = r;
        ++agreed;
      }
      return agreed >= 2;
    } catch (const std::exception&) {
      return false;
    }
  }

  MathVerdict scalars(const std::string& a, const std::string& b) {
    GiNaC::ex x, y;
    try {
      x = parse(a);
      y = parse(b);
    } catch (const TooLarge& e) {
      return {false, std::string("too large: ") + e.what()};
    } catch (const std::exception& e) {
      return {false, std::string("unparsable: ") + e.what()};
    }
    // Decimals are written rounded: compare them with the tolerance, not as exact rationals.
    const bool decimal = a.find('.') != std::string::npos || b.find('.') != std::string::npos;
    const bool exact = !decimal && GiNaC::is_a<GiNaC::numeric>(x) && GiNaC::is_a<GiNaC::numeric>(y) &&
                       GiNaC::ex_to<GiNaC::numeric>(x).is_rational() && GiNaC::ex_to<GiNaC::numeric>(y).is_rational();
    if (exact) return {x.is_equal(y), x.is_equal(y) ? "exact number" : "different numbers"};
    GiNaC::lst free;
    for (const auto& [name, sym] : symbols)
      if (x.has(sym) || y.has(sym)) free.append(sym);
    if (free.nops() == 0) {
      const auto u = value(x), v = value(y);
      if (!u || !v) return {false, "not a number"};
      return {close(*u, *v), close(*u, *v) ? "numeric" : "different values"};
    }
    // With variables: the two sides must agree at random points (a variable may cancel on one
    // side: sin^2 x + cos^2 x is 1).
    int agreed = 0;
    for (int trial = 0; trial < 4; ++trial) {
      check_time();
      GiNaC::exmap at;
      int k = 0;
      for (const auto& s : free) at[s] = GiNaC::numeric(37 + 113 * trial + 71 * k++, 97);
      const auto u = value(x.subs(at)), v = value(y.subs(at));
      if (!u || !v) continue;
      if (!close(*u, *v)) return {false, "different expressions"};
      ++agreed;
    }
    return {agreed >= 2, agreed >= 2 ? "symbolic" : "not evaluable"};
  }
};

// ---------------------------------------------------------------------------------------------
// Structure: tuples, intervals, sets, lists, unions, equations, inequalities, matrices

// Splits at `sep` where no bracket is open.
std::vector<std::string> split_top(const std::string& s, const std::string& sep) {
  std::vector<std::string> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\\' && i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) {
      depth += s[i + 1] == '{' ? 1 : -1;
      ++i;
      continue;
    }
    if (c == '(' || c == '[' || c == '{') ++depth;
    else if (c == ')' || c == ']' || c == '}') --depth;
    else if (depth == 0 && s.compare(i, sep.size(), sep) == 0) {
      // A command separator (\cup) must not be the start of a longer command.
      if (sep[0] == '\\' && i + sep.size() < s.size() && std::isalpha(static_cast<unsigned char>(s[i + sep.size()])))
        continue;
      parts.push_back(strip(s.substr(start, i - start)));
      start = i + sep.size();
      i = start - 1;
    }
  }
  parts.push_back(strip(s.substr(start)));
  return parts;
}

struct Value {
  enum Kind { kScalar, kTuple, kSet, kUnion, kEquation, kMatrix } kind = kScalar;
  std::string text;             // scalar
  char open = 0, close = 0;     // tuple/interval brackets
  std::vector<Value> items;     // tuple/set/union items, equation sides, matrix cells
  size_t columns = 0;           // matrix
};

Value parse_value(const std::string& raw, int depth = 0);

Value scalar(const std::string& s) {
  Value v;
  v.text = s;
  return v;
}

// "x > 3", "-2 < x \leq 5" -> an interval.
std::optional<Value> inequality(const std::string& s) {
  static const std::regex op("(\\\\leq|\\\\geq|\\\\le|\\\\ge|\\\\lt|\\\\gt|<=|>=|<|>)");
  std::vector<std::string> parts, ops;
  size_t start = 0;
  for (std::sregex_iterator it(s.begin(), s.end(), op), end; it != end; ++it) {
    parts.push_back(strip(s.substr(start, it->position(0) - start)));
    ops.push_back(it->str());
    start = it->position(0) + it->length(0);
  }
  if (ops.empty() || ops.size() > 2) return std::nullopt;
  parts.push_back(strip(s.substr(start)));
  auto less = [](const std::string& o) { return o[0] == '<' || o == "\\leq" || o == "\\le" || o == "\\lt"; };
  auto inclusive = [](const std::string& o) { return o == "<=" || o == ">=" || o == "\\leq" || o == "\\geq" || o == "\\le" || o == "\\ge"; };
  auto is_var = [](const std::string& p) { return p.size() == 1 && std::isalpha(static_cast<unsigned char>(p[0])); };
  Value v;
  v.kind = Value::kTuple;
  if (ops.size() == 2) {  // a < x < b
    if (!is_var(parts[1]) || less(ops[0]) != less(ops[1])) return std::nullopt;
    const bool up = less(ops[0]);
    v.open = inclusive(up ? ops[0] : ops[1]) ? '[' : '(';
    v.close = inclusive(up ? ops[1] : ops[0]) ? ']' : ')';
    v.items = {scalar(up ? parts[0] : parts[2]), scalar(up ? parts[2] : parts[0])};
    return v;
  }
  // x < b, x > a, a < x, b > x
  const bool var_left = is_var(parts[0]);
  if (!var_left && !is_var(parts[1])) return std::nullopt;
  const std::string bound = var_left ? parts[1] : parts[0];
  const bool upper = less(ops[0]) == var_left;  // the bound is an upper bound
  if (upper) {
    v.open = '(';
    v.close = inclusive(ops[0]) ? ']' : ')';
    v.items = {scalar("-\\infty"), scalar(bound)};
  } else {
    v.open = inclusive(ops[0]) ? '[' : '(';
    v.close = ')';
    v.items = {scalar(bound), scalar("\\infty")};
  }
  return v;
}

Value parse_value(const std::string& raw, int depth) {
  const std::string s = strip(raw);
  if (depth > 20 || s.empty()) return scalar(s);
  if (auto parts = split_top(s, "\\cup"); parts.size() > 1) {
    Value v;
    v.kind = Value::kUnion;
    for (const auto& p : parts) v.items.push_back(parse_value(p, depth + 1));
    return v;
  }
  for (const char* env : {"pmatrix", "bmatrix", "matrix", "vmatrix"}) {
    const std::string begin = std::string("\\begin{") + env + "}", end = std::string("\\end{") + env + "}";
    if (s.rfind(begin, 0) == 0 && s.size() >= begin.size() + end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0) {
      Value v;
      v.kind = Value::kMatrix;
      const std::string body = s.substr(begin.size(), s.size() - begin.size() - end.size());
      for (const auto& row : split_top(body, "\\\\")) {
        if (row.empty()) continue;
        const auto cells = split_top(row, "&");
        if (v.columns && cells.size() != v.columns) return scalar(s);
        v.columns = cells.size();
        for (const auto& c : cells) v.items.push_back(parse_value(c, depth + 1));
      }
      return v;
    }
  }
  if (s.size() >= 4 && s.rfind("\\{", 0) == 0 && s.compare(s.size() - 2, 2, "\\}") == 0) {
    Value v;
    v.kind = Value::kSet;
    for (const auto& p : split_top(s.substr(2, s.size() - 4), ",")) v.items.push_back(parse_value(p, depth + 1));
    return v;
  }
  const char first = s.front(), last = s.back();
  if ((first == '(' || first == '[') && (last == ')' || last == ']')) {
    // Brackets around the whole string (not "(1)(2)"), with a comma inside: a tuple or interval.
    int d = 0;
    bool whole = true;
    for (size_t i = 0; i + 1 < s.size() && whole; ++i) {
      d += (s[i] == '(' || s[i] == '[' || s[i] == '{') ? 1 : (s[i] == ')' || s[i] == ']' || s[i] == '}') ? -1 : 0;
      if (d == 0) whole = false;
    }
    if (whole) {
      const auto parts = split_top(s.substr(1, s.size() - 2), ",");
      if (parts.size() > 1) {
        Value v;
        v.kind = Value::kTuple;
        v.open = first;
        v.close = last;
        for (const auto& p : parts) v.items.push_back(parse_value(p, depth + 1));
        return v;
      }
    }
  }
  if (auto parts = split_top(s, ","); parts.size() > 1) {  // "1, -2": solutions in any order
    Value v;
    v.kind = Value::kSet;
    for (const auto& p : parts) v.items.push_back(parse_value(p, depth + 1));
    return v;
  }
  for (const char* pm : {"\\pm", "\\mp"}) {
    const size_t at = s.find(pm);
    if (at != std::string::npos) {
      const std::string rest = s.substr(at + 3);
      Value v;
      v.kind = Value::kSet;
      v.items = {parse_value(s.substr(0, at) + "+" + rest, depth + 1), parse_value(s.substr(0, at) + "-" + rest, depth + 1)};
      return v;
    }
  }
  if (auto ineq = inequality(s)) return *ineq;
  if (auto sides = split_top(s, "="); sides.size() == 2) {
    Value v;
    v.kind = Value::kEquation;
    v.items = {scalar(sides[0]), scalar(sides[1])};
    return v;
  }
  return scalar(s);
}

MathVerdict compare(Compare& c, const Value& a, const Value& b, int depth = 0);

MathVerdict unordered(Compare& c, const std::vector<Value>& a, const std::vector<Value>& b, const char* what, int depth) {
  if (a.size() != b.size()) return {false, std::string(what) + ": different sizes"};
  std::vector<bool> used(b.size(), false);
  for (const auto& x : a) {
    bool found = false;
    for (size_t j = 0; j < b.size() && !found; ++j)
      if (!used[j] && compare(c, x, b[j], depth + 1).equal) used[j] = found = true;
    if (!found) return {false, std::string(what) + ": an element has no match"};
  }
  return {true, what};
}

MathVerdict compare(Compare& c, const Value& a, const Value& b, int depth) {
  if (depth > 20) return {false, "too deep"};
  using K = Value::Kind;
  // One-element sets/lists and unions compare as their element.
  if ((a.kind == K::kSet || a.kind == K::kUnion) && a.items.size() == 1) return compare(c, a.items[0], b, depth + 1);
  if ((b.kind == K::kSet || b.kind == K::kUnion) && b.items.size() == 1) return compare(c, a, b.items[0], depth + 1);
  if (a.kind == K::kEquation && b.kind != K::kEquation) {
    // "y = 2x + 3" or "2x + 3 = y" against "2x + 3".
    for (int side = 0; side < 2; ++side) {
      const std::string v = without_spaces(a.items[side].text);
      if (v.size() == 1 && std::isalpha(static_cast<unsigned char>(v[0]))) return compare(c, a.items[1 - side], b, depth + 1);
    }
    return {false, "equation vs value"};
  }
  if (b.kind == K::kEquation && a.kind != K::kEquation) return compare(c, b, a, depth + 1);
  if (a.kind != b.kind) {
    if ((a.kind == K::kUnion && b.kind == K::kTuple) || (a.kind == K::kTuple && b.kind == K::kUnion))
      return {false, "union vs interval"};
    return {false, "different kinds of answer"};
  }
  switch (a.kind) {
    case K::kScalar: {
      if (without_spaces(a.text) == without_spaces(b.text)) return {true, "string"};
      return c.scalars(a.text, b.text);
    }
    case K::kTuple: {
      if (a.items.size() != b.items.size()) return {false, "tuple: different lengths"};
      if (a.open != b.open || a.close != b.close) return {false, "interval: different ends"};
      for (size_t i = 0; i < a.items.size(); ++i)
        if (!compare(c, a.items[i], b.items[i], depth + 1).equal) return {false, "tuple: element " + std::to_string(i) + " differs"};
      return {true, "tuple"};
    }
    case K::kSet:
      return unordered(c, a.items, b.items, "set", depth);
    case K::kUnion:
      return unordered(c, a.items, b.items, "union", depth);
    case K::kMatrix: {
      if (a.columns != b.columns || a.items.size() != b.items.size()) return {false, "matrix: different shapes"};
      for (size_t i = 0; i < a.items.size(); ++i)
        if (!compare(c, a.items[i], b.items[i], depth + 1).equal) return {false, "matrix: entry differs"};
      return {true, "matrix"};
    }
    case K::kEquation: {
      // Same equation: lhs - rhs agree up to sign.
      const std::string x = "(" + a.items[0].text + ")-(" + a.items[1].text + ")";
      const std::string y = "(" + b.items[0].text + ")-(" + b.items[1].text + ")";
      if (c.scalars(x, y).equal || c.scalars(x, "-(" + y + ")").equal) return {true, "equation"};
      // The same solutions: lhs - rhs of one is a constant multiple of the other's (2x = 4 and x = 2).
      if (c.proportional(x, y)) return {true, "equation (same solutions)"};
      return {false, "different equations"};
    }
  }
  return {false, "unknown"};
}

// Multiple choice: "A", "(B)", "\text{(C)}" -> the letter.
std::optional<char> choice_letter(const std::string& s) {
  static const std::regex letter("^\\(?([A-Ea-e])\\)?$");
  std::smatch m;
  const std::string t = without_spaces(s);
  if (std::regex_match(t, m, letter)) return static_cast<char>(std::toupper(m[1].str()[0]));
  return std::nullopt;
}

// Words (text answers like "Evelyn" or "\text{no solution}"): compared as lowercase strings.
bool is_words(const std::string& s) {
  int letters_in_a_row = 0, best = 0;
  for (char c : s) {
    letters_in_a_row = std::isalpha(static_cast<unsigned char>(c)) ? letters_in_a_row + 1 : 0;
    best = std::max(best, letters_in_a_row);
    if (c == '\\') return false;
  }
  return best >= 3;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

namespace {
MathVerdict math_equal_normalized(const std::string& a, const std::string& b, const MathVerifyOptions& options);
}  // namespace

MathVerdict math_equal_in_process(std::string_view answer, std::string_view reference, const MathVerifyOptions& options) {
  if (answer.size() > options.max_chars || reference.size() > options.max_chars) return {false, "too long"};
  // Two equations compare as equations ("x + y = 1" vs "y = 1 - x"); otherwise "y =" prefixes go.
  const std::string ea = normalize(answer, false), eb = normalize(reference, false);
  if (split_top(ea, "=").size() == 2 && split_top(eb, "=").size() == 2 && ea.find('<') == std::string::npos &&
      eb.find('<') == std::string::npos && ea.find('>') == std::string::npos && eb.find('>') == std::string::npos) {
    try {
      Compare c{options, {}, deadline_after(options)};
      return compare(c, parse_value(ea), parse_value(eb));
    } catch (const std::exception& e) {
      return {false, std::string("error: ") + e.what()};
    }
  }
  const std::string a = normalize(answer, true), b = normalize(reference, true);
  if (a.empty() || b.empty()) return {false, "empty"};
  // A percentage against a plain number: "10\%" equals 10 (the number asked for) and 0.1.
  const bool pa = answer.find('%') != std::string_view::npos, pb = reference.find('%') != std::string_view::npos;
  if (pa != pb) {
    const MathVerdict plain = math_equal_normalized(a, b, options);
    if (plain.equal) return plain;
    const MathVerdict scaled = pa ? math_equal_normalized("\\frac{" + a + "}{100}", b, options)
                                  : math_equal_normalized(a, "\\frac{" + b + "}{100}", options);
    return scaled.equal ? MathVerdict{true, "percent"} : plain;
  }
  return math_equal_normalized(a, b, options);
}

namespace {

MathVerdict math_equal_normalized(const std::string& a, const std::string& b, const MathVerifyOptions& options) {
  if (without_spaces(a) == without_spaces(b)) return {true, "string"};
  const auto la = choice_letter(a), lb = choice_letter(b);
  if (la && lb) return {*la == *lb, "choice"};
  if (is_words(a) || is_words(b)) {
    const bool same = lower(without_spaces(a)) == lower(without_spaces(b));
    return {same, same ? "text" : "different text"};
  }
  try {
    Compare c{options, {}, deadline_after(options)};
    return compare(c, parse_value(a), parse_value(b));
  } catch (const std::exception& e) {
    return {false, std::string("error: ") + e.what()};
  }
}

}  // namespace
}  // namespace r1
