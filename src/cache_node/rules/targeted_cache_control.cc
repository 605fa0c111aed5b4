#include "cache_node/rules/targeted_cache_control.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <variant>

namespace cache_node {
namespace {

constexpr int64_t kMaxDirectiveSeconds = int64_t{1} << 31;

// A bare item's type as far as the directives care (RFC 8941 §3.3).
struct Integer {
  int64_t value;
};
struct Boolean {
  bool value;
};
struct Other {};  // String, Token, Decimal, Byte Sequence, Inner List
struct String {};
using Value = std::variant<Integer, Boolean, String, Other>;

bool is_lcalpha(char c) {
  return c >= 'a' && c <= 'z';
}
bool is_alpha(char c) {
  return is_lcalpha(c) || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_tchar(char c) {
  return is_alpha(c) || is_digit(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A cursor over the field value; each parse_* returns false on a syntax error.
class Reader {
 public:
  explicit Reader(std::string_view text) : s_(text) {}
  bool done() const { return at_ >= s_.size(); }
  char peek() const { return done() ? '\0' : s_[at_]; }
  bool take(char c) {
    if (peek() != c) return false;
    ++at_;
    return true;
  }
  void skip_sp() {
    while (peek() == ' ') ++at_;
  }
  void skip_ows() {
    while (peek() == ' ' || peek() == '\t') ++at_;
  }
  bool key(std::string& out) {
    if (!is_lcalpha(peek()) && peek() != '*') return false;
    const size_t from = at_;
    while (is_lcalpha(peek()) || is_digit(peek()) || peek() == '_' || peek() == '-' ||
           peek() == '.' || peek() == '*')
      ++at_;
    out.assign(s_.substr(from, at_ - from));
    return true;
  }
  bool bare_item(Value& out);
  bool parameters();
  bool inner_list();

 private:
  bool number(Value& out);
  bool string();
  bool token();
  bool bytes();
  std::string_view s_;
  size_t at_ = 0;
};

bool Reader::number(Value& out) {
  const bool negative = take('-');
  int64_t value = 0;
  size_t digits = 0;
  while (is_digit(peek()) && digits < 16) {
    value = value * 10 + (peek() - '0');
    ++digits;
    ++at_;
  }
  if (digits == 0) return false;
  if (take('.')) {
    size_t fraction = 0;
    while (is_digit(peek())) ++fraction, ++at_;
    out = Other{};
    return digits <= 12 && fraction >= 1 && fraction <= 3;
  }
  out = Integer{negative ? -value : value};
  return digits <= 15;
}

bool Reader::string() {
  if (!take('"')) return false;
  while (!done()) {
    const char c = peek();
    ++at_;
    if (c == '"') return true;
    if (c == '\\') {
      if (peek() != '"' && peek() != '\\') return false;
      ++at_;
    } else if (c < 0x20 || c > 0x7e) {
      return false;
    }
  }
  return false;
}

bool Reader::token() {
  if (!is_alpha(peek()) && peek() != '*') return false;
  while (is_tchar(peek()) || peek() == ':' || peek() == '/') ++at_;
  return true;
}

bool Reader::bytes() {
  if (!take(':')) return false;
  while (is_alpha(peek()) || is_digit(peek()) || peek() == '+' || peek() == '/' || peek() == '=')
    ++at_;
  return take(':');
}

bool Reader::bare_item(Value& out) {
  const char c = peek();
  if (c == '-' || is_digit(c)) return number(out);
  out = Other{};
  if (c == '"') {
    out = String{};
    return string();
  }
  if (c == ':') return bytes();
  if (c == '?') {
    ++at_;
    if (peek() != '0' && peek() != '1') return false;
    out = Boolean{peek() == '1'};
    ++at_;
    return true;
  }
  return token();
}

bool Reader::parameters() {
  while (take(';')) {
    skip_sp();
    std::string name;
    if (!key(name)) return false;
    Value ignored;
    if (take('=') && !bare_item(ignored)) return false;
  }
  return true;
}

bool Reader::inner_list() {
  if (!take('(')) return false;
  while (!done()) {
    skip_sp();
    if (take(')')) return parameters();
    Value ignored;
    if (!bare_item(ignored) || !parameters()) return false;
    if (peek() != ' ' && peek() != ')') return false;
  }
  return false;
}

// Applies one member to `d`; false when a directive the node reads has a value of the wrong type.
bool apply(CacheDirectives& d, const std::string& name, const Value& value) {
  auto seconds = [&value](std::optional<int64_t>& slot) {
    const Integer* n = std::get_if<Integer>(&value);
    if (n == nullptr || n->value < 0) return false;
    slot = std::min(n->value, kMaxDirectiveSeconds);
    return true;
  };
  auto flag = [&value](bool& slot, bool string_allowed) {
    if (const Boolean* b = std::get_if<Boolean>(&value)) {
      slot = b->value;
      return true;
    }
    if (string_allowed && std::holds_alternative<String>(value)) {
      slot = true;
      return true;
    }
    return false;
  };
  if (name == "max-age") return seconds(d.max_age);
  if (name == "s-maxage") return seconds(d.s_maxage);
  if (name == "stale-if-error") return seconds(d.stale_if_error);
  if (name == "stale-while-revalidate") return seconds(d.stale_while_revalidate);
  if (name == "no-store") return flag(d.no_store, false);
  if (name == "no-cache") return flag(d.no_cache, true);
  if (name == "private") return flag(d.is_private, true);
  if (name == "immutable") return flag(d.immutable, false);
  if (name == "must-revalidate" || name == "proxy-revalidate") {
    bool set = false;
    if (!flag(set, false)) return false;
    d.must_revalidate = d.must_revalidate || set;
  }
  return true;
}

}  // namespace

std::optional<CacheDirectives> parse_targeted_cache_control(std::string_view value) {
  Reader r(value);
  r.skip_sp();
  if (r.done()) return std::nullopt;
  // A Dictionary: a later member of the same name replaces an earlier one (RFC 8941 §3.2).
  CacheDirectives d;
  std::string name;
  while (!r.done()) {
    if (!r.key(name)) return std::nullopt;
    Value member = Boolean{true};
    if (r.take('=')) {
      if (r.peek() == '(') {
        if (!r.inner_list()) return std::nullopt;
        member = Other{};
      } else if (!r.bare_item(member) || !r.parameters()) {
        return std::nullopt;
      }
    } else if (!r.parameters()) {
      return std::nullopt;
    }
    if (!apply(d, name, member)) return std::nullopt;
    r.skip_ows();
    if (r.done()) break;
    if (!r.take(',')) return std::nullopt;
    r.skip_ows();
    if (r.done()) return std::nullopt;  // a trailing comma
  }
  return d;
}

}  // namespace cache_node
