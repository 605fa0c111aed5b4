#include "core/url.h"

#include "core/ascii.h"

namespace core {
namespace {

bool has_control_char(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

void append_separator(std::string& target) {
  size_t q = target.find('?');
  if (q == std::string::npos) {
    target += '?';
  } else if (q + 1 != target.size() && target.back() != '&') {
    target += '&';  // a later '?' is part of a value, not an empty query
  }
}

Error bad_request(std::string message) {
  return Error{"bad_request", std::move(message)};
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view in, bool plus_as_space) {
  // Most text has nothing to decode (paths, ids, tokens): copied whole up to the first
  // character that needs a look.
  size_t plain = 0;
  while (plain < in.size() && in[plain] != '%' && in[plain] != '\0' &&
         !(plus_as_space && in[plain] == '+')) {
    ++plain;
  }
  std::string out(in.substr(0, plain));
  if (plain == in.size()) return out;
  out.reserve(in.size());
  for (size_t i = plain; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      int hi = hex_digit_value(in[i + 1]);
      int lo = hex_digit_value(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') return std::nullopt;
      out.push_back(decoded);
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else if (c == '\0') {
      return std::nullopt;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void QueryParams::Iterator::advance() {
  while (!rest_.empty()) {
    size_t amp = rest_.find('&');
    std::string_view pair = rest_.substr(0, amp);
    rest_ = amp == std::string_view::npos ? std::string_view{} : rest_.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    current_.text = pair;
    current_.name = pair.substr(0, eq);
    current_.value = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    return;
  }
  done_ = true;
}

std::optional<QueryParam> find_query_param(std::string_view query, std::string_view name) {
  for (const QueryParam& param : QueryParams(query)) {
    if (param.name == name) return param;
  }
  return std::nullopt;
}

std::optional<TakenQueryParam> take_query_param(std::string_view target, std::string_view name) {
  const size_t question = target.find('?');
  if (question == std::string_view::npos) return std::nullopt;
  const size_t hash = target.find('#', question);
  const std::string_view query =
      target.substr(question + 1, hash == std::string_view::npos ? hash : hash - question - 1);
  if (!find_query_param(query, name)) return std::nullopt;
  TakenQueryParam out;
  out.target.assign(target.substr(0, question));
  std::string rest;
  for (const QueryParam& param : QueryParams(query)) {
    if (param.name == name) {
      out.raw_value.assign(param.value);
      continue;
    }
    if (!rest.empty()) rest.push_back('&');
    rest.append(param.text);
  }
  if (!rest.empty()) out.target.append("?").append(rest);
  if (hash != std::string_view::npos) out.target.append(target.substr(hash));
  return out;
}

void append_query_param(std::string& target, std::string_view name,
                        std::string_view encoded_value) {
  append_separator(target);
  target.append(name).append("=").append(encoded_value);
}

void append_query(std::string& target, std::string_view encoded_query) {
  if (encoded_query.empty()) return;
  append_separator(target);
  target.append(encoded_query);
}

bool has_dot_segment(std::string_view decoded_path) {
  size_t start = decoded_path.empty() || decoded_path[0] != '/' ? 0 : 1;
  while (start <= decoded_path.size()) {
    size_t end = decoded_path.find('/', start);
    if (end == std::string_view::npos) end = decoded_path.size();
    std::string_view segment = decoded_path.substr(start, end - start);
    if (segment == "." || segment == "..") return true;
    start = end + 1;
  }
  return false;
}

Status check_servable_origin_target(std::string_view raw_path, std::string_view raw_query) {
  if (raw_path.size() < 2 || raw_path[0] != '/')
    return bad_request("The URL names an origin but no path on it.");
  if (raw_path.substr(0, 2) == "//")
    return bad_request("Absolute or scheme-relative URLs are not accepted.");
  if (has_control_char(raw_path) || has_control_char(raw_query)) {
    return bad_request("Control characters are not accepted.");
  }
  auto decoded = percent_decode(raw_path);
  if (!decoded) return bad_request("The path has malformed percent-encoding or an encoded NUL.");
  if (decoded->find('\\') != std::string::npos)
    return bad_request("Backslashes are not accepted in paths.");
  if (decoded->find("://") != std::string::npos)
    return bad_request("Absolute URLs are not accepted in paths.");
  if (has_dot_segment(*decoded)) return bad_request("Dot segments are not accepted in paths.");
  if (decoded->find("//") != std::string::npos)
    return bad_request("Empty path segments are not accepted.");
  if (!raw_query.empty() && !percent_decode(raw_query)) {
    return bad_request("The query has malformed percent-encoding or an encoded NUL.");
  }
  return {};
}

}  // namespace core
