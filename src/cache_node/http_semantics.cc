#include "cache_node/http_semantics.h"

#include <charconv>
#include <ctime>

namespace cache_node {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

std::string_view opaque_tag(std::string_view tag) {
  tag = trim(tag);
  if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
  return tag;
}

}  // namespace

RangeDecision evaluate_range(std::optional<std::string_view> header, uint64_t size) {
  RangeDecision out;
  if (!header) return out;
  std::string_view v = trim(*header);
  if (v.substr(0, 6) != "bytes=") return out;
  v.remove_prefix(6);
  if (v.find(',') != std::string_view::npos) return out;  // multiple ranges: serve whole
  auto dash = v.find('-');
  if (dash == std::string_view::npos) return out;
  std::string_view a = trim(v.substr(0, dash));
  std::string_view b = trim(v.substr(dash + 1));
  uint64_t first = 0, last = 0;
  if (a.empty()) {
    uint64_t suffix = 0;
    if (!parse_u64(b, suffix)) return out;
    if (suffix == 0 || size == 0) {
      out.outcome = RangeOutcome::unsatisfiable;
      return out;
    }
    first = suffix >= size ? 0 : size - suffix;
    last = size - 1;
  } else {
    if (!parse_u64(a, first)) return out;
    if (b.empty()) {
      last = size == 0 ? 0 : size - 1;
    } else {
      if (!parse_u64(b, last) || last < first) return out;
      if (last >= size) last = size == 0 ? 0 : size - 1;
    }
    if (first >= size) {
      out.outcome = RangeOutcome::unsatisfiable;
      return out;
    }
  }
  out.outcome = RangeOutcome::satisfiable;
  out.range = ByteRange{first, last};
  return out;
}

bool not_modified(std::optional<std::string_view> if_none_match, std::optional<std::string_view> if_modified_since,
                  std::string_view etag, std::string_view last_modified) {
  if (if_none_match) {
    std::string_view list = *if_none_match;
    if (trim(list) == "*") return true;
    if (etag.empty()) return false;
    while (!list.empty()) {
      auto comma = list.find(',');
      if (opaque_tag(list.substr(0, comma)) == opaque_tag(etag)) return true;
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
    return false;
  }
  if (if_modified_since && !last_modified.empty()) {
    auto since = parse_http_date(*if_modified_since);
    auto modified = parse_http_date(last_modified);
    return since && modified && *modified <= *since;
  }
  return false;
}

bool if_range_allows(std::optional<std::string_view> if_range, std::string_view etag,
                     std::string_view last_modified) {
  if (!if_range) return true;
  std::string_view v = trim(*if_range);
  if (!v.empty() && (v.front() == '"' || v.substr(0, 2) == "W/")) {
    // Strong comparison only for If-Range.
    return v.substr(0, 2) != "W/" && !etag.empty() && etag.substr(0, 2) != "W/" && v == etag;
  }
  return !last_modified.empty() && v == last_modified;
}

std::optional<int64_t> parse_http_date(std::string_view text) {
  std::string s(trim(text));
  // IMF-fixdate, then the two obsolete forms recipients must accept (RFC 9110 §5.6.7).
  for (const char* format : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y"}) {
    tm t{};
    const char* end = strptime(s.c_str(), format, &t);
    if (end != nullptr && *end == '\0') return static_cast<int64_t>(timegm(&t));
  }
  return std::nullopt;
}

std::string format_http_date(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  tm utc{};
  gmtime_r(&t, &utc);
  char buf[64];
  strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &utc);
  return buf;
}

}  // namespace cache_node
