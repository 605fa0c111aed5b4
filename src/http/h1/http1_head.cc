#include "http/h1/http1_head.h"

#include <algorithm>

#include "core/ascii.h"

namespace http {
namespace {

// A request target: visible characters and obs-text, no whitespace or control.
bool is_target(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f;
  });
}

// A field value: visible characters, obs-text, SP and HTAB (RFC 9110 §5.5).
bool is_field_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u >= 0x20 && u != 0x7f) || c == '\t';
  });
}

void refuse_head(HeadParse& out, std::string_view why) {
  out.status = HeadStatus::malformed;
  out.error = why;
}

constexpr size_t kMaxChunkLine = 4096;
constexpr size_t kMaxTrailerBytes = 16 * 1024;

}  // namespace

size_t http1_head_end(std::string_view bytes, size_t from) {
  for (size_t lf = bytes.find('\n', from); lf != std::string_view::npos;
       lf = bytes.find('\n', lf + 1)) {
    const size_t next = lf + 1;
    if (next < bytes.size() && bytes[next] == '\n') return next + 1;
    if (next + 1 < bytes.size() && bytes[next] == '\r' && bytes[next + 1] == '\n') return next + 2;
  }
  return std::string_view::npos;
}

namespace {

// "METHOD SP target SP HTTP/d.d" into `head`; the reason when it is not.
std::string_view read_request_line(std::string_view line, Http1Head& head) {
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return "The request line is not method, target and version.";
  head.method = line.substr(0, sp1);
  head.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(head.method)) return "The request method is not a token.";
  if (!is_target(head.target)) return "The request target is empty or has spaces or controls.";
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return "The request line does not end in an HTTP version (HTTP/1.1).";
  }
  head.major = version[5] - '0';
  head.minor = version[7] - '0';
  return {};
}

// "name: value" into `head`'s fields; the reason when it is not.
std::string_view read_field(std::string_view line, Http1Head& head) {
  if (line.front() == ' ' || line.front() == '\t') {
    return "A header field is folded onto the previous line (obs-fold).";
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return "A header line has no colon.";
  const std::string_view name = line.substr(0, colon);
  if (!is_token(name)) return "A header field name is not a token (or has space before its colon).";
  const std::string_view value = core::trim_ows(line.substr(colon + 1));
  if (!is_field_value(value)) return "A header field value has a control character.";
  head.fields.push_back({name, value});
  return {};
}

bool is_hex(char c) {
  return core::hex_digit_value(c) >= 0;
}

bool is_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// RFC 3986 reg-name: unreserved, sub-delims and pct-encoded (a '%' and two hex digits).
bool is_reg_name(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
      i += 2;
    } else if (!is_alnum(s[i]) && std::string_view("-._~!$&'()*+,;=").find(s[i]) == s.npos) {
      return false;
    }
  }
  return true;
}

// The characters of a Host value: request_framing.cc's rule (host, port, IP literal brackets).
bool is_host_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return is_alnum(c) || std::string_view("-._~%!$&'()*+,;=:[]").find(c) != std::string_view::npos;
  });
}

// An absolute-form target's authority (RFC 3986 §3.2): host [":" port], an IPv6 literal in
// brackets, no userinfo (RFC 9110 §4.2.4), no empty host (§4.2.1); the reason when it is not.
std::string_view check_authority(std::string_view authority) {
  if (authority.find('@') != authority.npos)
    return "An absolute-form request target must not carry userinfo.";
  std::string_view host = authority;
  std::string_view after_host;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == authority.npos) return "An absolute-form request target's IP literal is unclosed.";
    host = authority.substr(1, close - 1);
    after_host = authority.substr(close + 1);
    const bool ipv6 = host.find(':') != host.npos &&
                      std::all_of(host.begin(), host.end(),
                                  [](char c) { return is_hex(c) || c == ':' || c == '.'; });
    if (!ipv6) return "An absolute-form request target's IP literal is not an IPv6 address.";
  } else {
    host = authority.substr(0, authority.find(':'));
    after_host = authority.substr(host.size());
    if (!is_reg_name(host))
      return "An absolute-form request target's host has a character a host cannot have.";
  }
  if (host.empty()) return "An absolute-form request target has no host.";
  if (after_host.empty()) return {};
  const std::string_view port = after_host.substr(1);
  uint32_t number = 0;
  bool digits = after_host.front() == ':' && !port.empty() && port.size() <= 5;
  for (size_t i = 0; digits && i < port.size(); ++i) {
    digits = port[i] >= '0' && port[i] <= '9';
    number = number * 10 + static_cast<uint32_t>(port[i] - '0');
  }
  if (!digits || number > 65535)
    return "An absolute-form request target's port is not a number up to 65535.";
  return {};
}

// An absolute-form target ("http://host:port/path?query", RFC 9112 §3.2.2) becomes its path
// and query, and every Host field takes the target's authority (the server MUST use it, not
// the Host sent). Views into the same bytes, so the head stays views. Only http and https: any
// other target is left for the server to answer (400 unless origin-form). The reason when the
// target is an http(s) URI this refuses.
std::string_view take_absolute_form(Http1Head& head) {
  const std::string_view target = head.target;
  const size_t scheme_end = core::iequals(target.substr(0, 7), "http://")    ? 7
                            : core::iequals(target.substr(0, 8), "https://") ? 8
                                                                             : 0;
  if (scheme_end == 0) return {};
  const std::string_view rest = target.substr(scheme_end);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (const std::string_view problem = check_authority(authority); !problem.empty()) return problem;
  const std::string_view path_and_query = rest.substr(authority.size());
  if (path_and_query.empty()) {
    // An empty path is "/" in origin-form (§3.2.1): the second slash of "//".
    head.target = target.substr(scheme_end - 1, 1);
  } else if (path_and_query.front() == '/') {
    head.target = path_and_query;
  } else {
    return "An absolute-form request target's query or fragment must follow a path (\"/\").";
  }
  for (HeaderField& field : head.fields) {
    // An invalid Host is left as sent, for the framing check to refuse (§3.2: 400).
    if (core::iequals(field.name, "Host") && is_host_value(field.value)) field.value = authority;
  }
  return {};
}

}  // namespace

HeadParse parse_http1_head(std::string_view bytes, size_t max_bytes) {
  HeadParse out;
  parse_http1_head(bytes, max_bytes, out);
  return out;
}

void parse_http1_head(std::string_view bytes, size_t max_bytes, HeadParse& out) {
  out.status = HeadStatus::incomplete;
  out.error = {};
  out.head.fields.clear();
  out.head.size = 0;
  // Empty lines before the request line are skipped (§2.2).
  size_t start = 0;
  while (start < bytes.size() && (bytes[start] == '\n' || bytes[start] == '\r')) {
    if (bytes[start] == '\r' && start + 1 < bytes.size() && bytes[start + 1] != '\n') {
      return refuse_head(out, "A bare CR is not a line's end.");
    }
    ++start;
  }
  const size_t end = http1_head_end(bytes, start);
  if (end == std::string_view::npos || end > max_bytes) {
    out.status = end != std::string_view::npos || bytes.size() >= max_bytes
                     ? HeadStatus::too_large
                     : HeadStatus::incomplete;
    return;
  }
  Http1Head& head = out.head;
  head.size = end;
  bool first = true;
  for (size_t pos = start; pos < end;) {
    const size_t lf = bytes.find('\n', pos);
    std::string_view line = bytes.substr(pos, lf - pos);
    pos = lf + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\r') != std::string_view::npos)
      return refuse_head(out, "A bare CR is not a line's end.");
    if (line.empty()) break;  // the head's end
    const std::string_view problem = first ? read_request_line(line, head) : read_field(line, head);
    if (!problem.empty()) return refuse_head(out, problem);
    first = false;
  }
  if (const std::string_view problem = take_absolute_form(head); !problem.empty())
    return refuse_head(out, problem);
  out.status = HeadStatus::complete;
}

ChunkedBodyDecoder::Status ChunkedBodyDecoder::refuse(std::string_view why) {
  error_ = why;
  return Status::malformed;
}

ChunkedBodyDecoder::Status ChunkedBodyDecoder::feed(std::string_view bytes, std::string& body,
                                                    size_t max_body, size_t& used) {
  used = 0;
  if (!error_.empty()) return Status::malformed;
  // Each turn takes one line or one run of data; every turn uses at least one byte or returns.
  while (used < bytes.size()) {
    std::string_view rest = bytes.substr(used);
    if (part_ == Part::data) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, rest.size()));
      if (body.size() + take > max_body) return Status::too_large;
      body.append(rest.data(), take);
      used += take;
      remaining_ -= take;
      if (remaining_ == 0) part_ = Part::data_end;
      continue;
    }
    const size_t lf = rest.find('\n');
    if (lf == std::string_view::npos) {
      if (rest.size() > kMaxChunkLine) return refuse("A chunk size or trailer line is too long.");
      return Status::more;
    }
    if (lf > kMaxChunkLine) return refuse("A chunk size or trailer line is too long.");
    std::string_view line = rest.substr(0, lf);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    used += lf + 1;
    if (!is_field_value(line)) {  // a size or trailer line: the same characters as a value
      return refuse("A chunk size or trailer line has a control character or a bare CR.");
    }
    switch (part_) {
      case Part::data_end:
        if (!line.empty()) return refuse("A chunk's data is not followed by its line end.");
        part_ = Part::size_line;
        break;
      case Part::size_line: {
        size_t digits = 0;
        uint64_t size = 0;
        for (; digits < line.size() && core::hex_digit_value(line[digits]) >= 0; ++digits) {
          if (digits == 15) return refuse("A chunk size has more than 15 hex digits.");
          size = size * 16 + static_cast<uint64_t>(core::hex_digit_value(line[digits]));
        }
        if (digits == 0) return refuse("A chunk size is not a hex number.");
        // What may follow: whitespace, then extensions after ';' (skipped).
        std::string_view after = core::trim_ows(line.substr(digits));
        if (!after.empty() && after.front() != ';') {
          return refuse("A chunk size is followed by something other than an extension.");
        }
        if (size == 0) {
          part_ = Part::trailer;
        } else {
          remaining_ = size;
          part_ = Part::data;
        }
        break;
      }
      case Part::trailer:
        if (line.empty()) return Status::complete;
        trailer_bytes_ += lf + 1;
        if (trailer_bytes_ > kMaxTrailerBytes) return refuse("The trailer fields are too long.");
        break;
      case Part::data:
        break;  // handled above
    }
  }
  return Status::more;
}

}  // namespace http
