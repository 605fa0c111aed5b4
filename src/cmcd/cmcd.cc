#include "cmcd/cmcd.h"

#include <vector>

namespace cmcd {
namespace {

// One bare item of RFC 8941 with the parameter CMCD v2 uses (`r` on `nor`).
struct Item {
  enum class Kind { integer, decimal, string, token, boolean, bytes } kind = Kind::boolean;
  int64_t integer = 0;
  std::string text;  // string, token or byte sequence (as sent)
  bool boolean = true;
  std::string range;  // the `r` parameter, when a string
};

struct Member {
  std::string key;
  std::vector<Item> items;  // one for an item, any number for an inner list
  bool inner_list = false;
};

bool lcalpha(char c) {
  return c >= 'a' && c <= 'z';
}
bool digit(char c) {
  return c >= '0' && c <= '9';
}
bool alpha(char c) {
  return lcalpha(c) || (c >= 'A' && c <= 'Z');
}
bool tchar(char c) {
  if (alpha(c) || digit(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}
bool base64_char(char c) {
  return alpha(c) || digit(c) || c == '+' || c == '/' || c == '=';
}

// A strict RFC 8941 dictionary parser over a bounded input. Every loop advances `pos_` or
// fails, so the work is linear in the input.
class DictionaryParser {
 public:
  explicit DictionaryParser(std::string_view text) : s_(text) {}

  std::string parse(std::vector<Member>& out) {
    skip_sp();
    if (pos_ == s_.size()) return "";  // an empty dictionary
    while (true) {
      if (out.size() == kMaxMembers) return "more than " + std::to_string(kMaxMembers) + " keys";
      Member m;
      if (auto e = key(m.key); !e.empty()) return e;
      if (peek('=')) {
        ++pos_;
        if (peek('(')) {
          m.inner_list = true;
          if (auto e = inner_list(m.items); !e.empty()) return e;
        } else {
          Item item;
          if (auto e = bare_item(item); !e.empty()) return e;
          if (auto e = parameters(item); !e.empty()) return e;
          m.items.push_back(std::move(item));
        }
      } else {
        Item item;  // a bare key: boolean true
        if (auto e = parameters(item); !e.empty()) return e;
        m.items.push_back(std::move(item));
      }
      // A key given twice: the last one counts (RFC 8941 §4.2.2).
      bool replaced = false;
      for (auto& existing : out) {
        if (existing.key == m.key) {
          existing = std::move(m);
          replaced = true;
          break;
        }
      }
      if (!replaced) out.push_back(std::move(m));
      skip_ows();
      if (pos_ == s_.size()) return "";
      if (!peek(',')) return "expected ',' at byte " + std::to_string(pos_);
      ++pos_;
      skip_ows();
      if (pos_ == s_.size()) return "a trailing ','";
    }
  }

 private:
  bool peek(char c) const { return pos_ < s_.size() && s_[pos_] == c; }
  void skip_sp() {
    while (peek(' ')) ++pos_;
  }
  void skip_ows() {
    while (peek(' ') || peek('\t')) ++pos_;
  }

  std::string key(std::string& out) {
    if (pos_ >= s_.size() || !(lcalpha(s_[pos_]) || s_[pos_] == '*'))
      return "expected a key at byte " + std::to_string(pos_);
    const size_t start = pos_;
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      // Upper case past the first character is beyond RFC 8941, but CTA-5004's own example of a
      // custom key has it (com.example-myNumericKey): accepted, so one such key does not cost
      // the whole report.
      if (!(alpha(c) || digit(c) || c == '_' || c == '-' || c == '.' || c == '*')) break;
      ++pos_;
    }
    out.assign(s_.substr(start, pos_ - start));
    return "";
  }

  std::string inner_list(std::vector<Item>& items) {
    ++pos_;  // '('
    while (true) {
      skip_sp();
      if (peek(')')) {
        ++pos_;
        Item list_params;  // an inner list's own parameters: read and dropped
        return parameters(list_params);
      }
      if (pos_ >= s_.size()) return "an inner list without ')'";
      if (items.size() == kMaxInnerListItems)
        return "an inner list of more than " + std::to_string(kMaxInnerListItems) + " items";
      Item item;
      if (auto e = bare_item(item); !e.empty()) return e;
      if (auto e = parameters(item); !e.empty()) return e;
      items.push_back(std::move(item));
      if (!(peek(' ') || peek(')')))
        return "expected ' ' or ')' in an inner list at byte " + std::to_string(pos_);
    }
  }

  std::string parameters(Item& item) {
    while (peek(';')) {
      ++pos_;
      skip_sp();
      std::string name;
      if (auto e = key(name); !e.empty()) return e;
      Item value;  // a parameter without a value is boolean true
      if (peek('=')) {
        ++pos_;
        if (auto e = bare_item(value); !e.empty()) return e;
      }
      if (name == "r" && value.kind == Item::Kind::string) item.range = std::move(value.text);
    }
    return "";
  }

  std::string bare_item(Item& item) {
    if (pos_ >= s_.size()) return "a value is missing at the end";
    const char c = s_[pos_];
    if (c == '-' || digit(c)) return number(item);
    if (c == '"') return string(item);
    if (c == '?') {
      if (pos_ + 1 < s_.size() && (s_[pos_ + 1] == '0' || s_[pos_ + 1] == '1')) {
        item.kind = Item::Kind::boolean;
        item.boolean = s_[pos_ + 1] == '1';
        pos_ += 2;
        return "";
      }
      return "a boolean other than ?0 or ?1 at byte " + std::to_string(pos_);
    }
    if (c == ':') {
      const size_t start = ++pos_;
      while (pos_ < s_.size() && base64_char(s_[pos_])) ++pos_;
      if (!peek(':')) return "a byte sequence without its closing ':'";
      item.kind = Item::Kind::bytes;
      item.text.assign(s_.substr(start, pos_ - start));
      ++pos_;
      return "";
    }
    if (alpha(c) || c == '*') {
      const size_t start = pos_;
      while (pos_ < s_.size() && (tchar(s_[pos_]) || s_[pos_] == ':' || s_[pos_] == '/')) ++pos_;
      if (pos_ - start > kMaxStringBytes)
        return "a token longer than " + std::to_string(kMaxStringBytes) + " bytes";
      item.kind = Item::Kind::token;
      item.text.assign(s_.substr(start, pos_ - start));
      return "";
    }
    return "an unexpected character at byte " + std::to_string(pos_);
  }

  // The value of the digits at pos_, read past them; nullopt at a digit past `max_digits`.
  std::optional<int64_t> digit_run(size_t max_digits) {
    const size_t start = pos_;
    int64_t value = 0;
    while (pos_ < s_.size() && digit(s_[pos_])) {
      if (pos_ - start == max_digits) return std::nullopt;
      value = value * 10 + (s_[pos_] - '0');
      ++pos_;
    }
    return value;
  }

  std::string number(Item& item) {
    bool negative = false;
    if (peek('-')) {
      negative = true;
      ++pos_;
    }
    const size_t start = pos_;
    const std::optional<int64_t> whole = digit_run(15);
    if (!whole) return "an integer of more than 15 digits";
    if (pos_ == start) return "a number without digits at byte " + std::to_string(pos_);
    if (peek('.')) {
      if (pos_ - start > 12) return "a decimal of more than 12 integer digits";
      ++pos_;
      const size_t fraction_start = pos_;
      const std::optional<int64_t> fraction = digit_run(3);
      if (!fraction) return "a decimal of more than 3 fraction digits";
      if (pos_ == fraction_start) return "a decimal without fraction digits";
      item.kind = Item::Kind::decimal;
      // Rounded to an integer: the keys read here are whole numbers in every player seen.
      const size_t digits = pos_ - fraction_start;
      const int64_t scale = digits == 1 ? 10 : digits == 2 ? 100 : 1000;
      item.integer = *whole + (*fraction * 2 >= scale ? 1 : 0);
    } else {
      item.kind = Item::Kind::integer;
      item.integer = *whole;
    }
    if (negative) item.integer = -item.integer;
    return "";
  }

  std::string string(Item& item) {
    ++pos_;  // '"'
    item.kind = Item::Kind::string;
    while (pos_ < s_.size()) {
      const char c = s_[pos_++];
      if (c == '"') return "";
      if (c == '\\') {
        if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\\'))
          return "a bad escape in a string";
        item.text.push_back(s_[pos_++]);
      } else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
        return "a control or non-ASCII character in a string";
      } else {
        item.text.push_back(c);
      }
      if (item.text.size() > kMaxStringBytes)
        return "a string longer than " + std::to_string(kMaxStringBytes) + " bytes";
    }
    return "a string without its closing quote";
  }

  std::string_view s_;
  size_t pos_ = 0;
};

bool numeric(const Item& item) {
  return item.kind == Item::Kind::integer || item.kind == Item::Kind::decimal;
}

// The first item of a member (an inner list's first item, v2), or null when empty.
const Item* first(const Member& m) {
  return m.items.empty() ? nullptr : &m.items.front();
}

void number_into(const Member& m, std::optional<int64_t>& out) {
  const Item* item = first(m);
  if (item != nullptr && numeric(*item) && item->integer >= 0) out = item->integer;
}

void text_into(const Member& m, std::string& out, bool token) {
  const Item* item = first(m);
  if (item == nullptr) return;
  if (item->kind == Item::Kind::string || (token && item->kind == Item::Kind::token))
    out = item->text;
}

void flag_into(const Member& m, bool& out) {
  const Item* item = first(m);
  if (item != nullptr && item->kind == Item::Kind::boolean) out = item->boolean;
}

// `nor`: a string, with the next range as its `r` parameter (v2).
void next_object_into(const Member& m, Data& d) {
  const Item* item = first(m);
  if (item != nullptr && item->kind == Item::Kind::string) {
    d.next_object = item->text;
    if (!item->range.empty()) d.next_range = item->range;
  }
}

// The keys read into Data; any other key is passed over.
struct KeyReader {
  std::string_view key;
  void (*read)(const Member& m, Data& d);
};
constexpr KeyReader kKeyReaders[] = {
    {"v", [](const Member& m, Data& d) { number_into(m, d.version); }},
    {"bl", [](const Member& m, Data& d) { number_into(m, d.buffer_length_ms); }},
    {"br", [](const Member& m, Data& d) { number_into(m, d.bitrate_kbps); }},
    {"tb", [](const Member& m, Data& d) { number_into(m, d.top_bitrate_kbps); }},
    {"mtp", [](const Member& m, Data& d) { number_into(m, d.measured_throughput_kbps); }},
    {"d", [](const Member& m, Data& d) { number_into(m, d.object_duration_ms); }},
    {"ltc", [](const Member& m, Data& d) { number_into(m, d.live_latency_ms); }},
    {"bs", [](const Member& m, Data& d) { flag_into(m, d.buffer_starvation); }},
    {"su", [](const Member& m, Data& d) { flag_into(m, d.startup); }},
    {"sid", [](const Member& m, Data& d) { text_into(m, d.session_id, false); }},
    {"cid", [](const Member& m, Data& d) { text_into(m, d.content_id, false); }},
    {"ot", [](const Member& m, Data& d) { text_into(m, d.object_type, true); }},
    {"st", [](const Member& m, Data& d) { text_into(m, d.stream_type, true); }},
    {"sta", [](const Member& m, Data& d) { text_into(m, d.play_state, true); }},
    {"nrr", [](const Member& m, Data& d) { text_into(m, d.next_range, false); }},
    {"nor", next_object_into},
};

}  // namespace

bool Data::any() const {
  return version || buffer_length_ms || bitrate_kbps || top_bitrate_kbps ||
         measured_throughput_kbps || object_duration_ms || live_latency_ms || buffer_starvation ||
         startup || !session_id.empty() || !content_id.empty() || !object_type.empty() ||
         !stream_type.empty() || !play_state.empty() || !next_object.empty() || !next_range.empty();
}

std::string parse_into(std::string_view payload, Data& into) {
  if (payload.size() > kMaxPayloadBytes)
    return "longer than " + std::to_string(kMaxPayloadBytes) + " bytes";
  std::vector<Member> members;
  if (auto e = DictionaryParser(payload).parse(members); !e.empty()) return e;
  Data d = into;
  for (const Member& m : members) {
    for (const KeyReader& reader : kKeyReaders) {
      if (m.key == reader.key) reader.read(m, d);
    }
  }
  into = std::move(d);
  return "";
}

}  // namespace cmcd
