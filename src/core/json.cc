#include "core/json.h"

#include <rapidjson/error/en.h>

#include <charconv>
#include <cstdio>

namespace core {

namespace {

template <typename Integer>
void append_number(std::string& out, std::string_view before, Integer value) {
  out += before;
  char digits[24];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, value).ptr);
}

}  // namespace

void append_json_number(std::string& out, std::string_view before, uint64_t value) {
  append_number(out, before, value);
}

void append_json_number(std::string& out, std::string_view before, int64_t value) {
  append_number(out, before, value);
}

void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

std::string json_string(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

std::string json_error_body(std::string_view code, std::string_view message) {
  std::string out = "{\"error\":{\"code\":";
  append_json_string(out, code);
  out += ",\"message\":";
  append_json_string(out, message);
  out += "}}\n";
  return out;
}

bool json_nesting_exceeds(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) return true;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return false;
}

Status parse_json(std::string_view text, rapidjson::Document& doc, size_t max_depth) {
  if (json_nesting_exceeds(text, max_depth)) {
    return Error{"json_too_deep",
                 "arrays and objects nest deeper than " + std::to_string(max_depth) + " levels"};
  }
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError()) {
    return Error{"malformed_json", std::string(rapidjson::GetParseError_En(doc.GetParseError())) +
                                       " (at byte " + std::to_string(doc.GetErrorOffset()) + ")"};
  }
  return {};
}

}  // namespace core
