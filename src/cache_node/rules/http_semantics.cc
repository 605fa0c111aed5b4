#include "cache_node/rules/http_semantics.h"

#include <cstdint>
#include <ctime>

namespace cache_node {

namespace {

// A range's position: one or more digits, a value past 2^64 - 1 read as 2^64 - 1 (RFC 9110
// §14.1.2: a last position past the end means the end, however large; a first one past it is
// unsatisfiable either way).
bool parse_position(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    out = out > (UINT64_MAX - digit) / 10 ? UINT64_MAX : out * 10 + digit;
  }
  return true;
}

std::string_view opaque_tag(std::string_view tag) {
  tag = trim_ows(tag);
  if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
  return tag;
}

}  // namespace

RangeDecision evaluate_range(std::optional<std::string_view> header, uint64_t size) {
  RangeDecision out;
  if (!header) return out;
  std::string_view v = trim_ows(*header);
  if (v.substr(0, 6) != "bytes=") return out;
  v.remove_prefix(6);
  if (v.find(',') != std::string_view::npos) return out;  // multiple ranges: serve whole
  auto dash = v.find('-');
  if (dash == std::string_view::npos) return out;
  std::string_view a = trim_ows(v.substr(0, dash));
  std::string_view b = trim_ows(v.substr(dash + 1));
  uint64_t first = 0, last = 0;
  if (a.empty()) {
    uint64_t suffix = 0;
    if (!parse_position(b, suffix)) return out;
    if (suffix == 0 || size == 0) {
      out.outcome = RangeOutcome::unsatisfiable;
      return out;
    }
    first = suffix >= size ? 0 : size - suffix;
    last = size - 1;
  } else {
    if (!parse_position(a, first)) return out;
    if (b.empty()) {
      last = size == 0 ? 0 : size - 1;
    } else {
      if (!parse_position(b, last) || last < first) return out;
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

bool not_modified(std::optional<std::string_view> if_none_match,
                  std::optional<std::string_view> if_modified_since, std::string_view etag,
                  std::string_view last_modified) {
  if (if_none_match) {
    std::string_view list = *if_none_match;
    if (trim_ows(list) == "*") return true;
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
  std::string_view v = trim_ows(*if_range);
  if (!v.empty() && (v.front() == '"' || v.substr(0, 2) == "W/")) {
    // Strong comparison only for If-Range.
    return v.substr(0, 2) != "W/" && !etag.empty() && etag.substr(0, 2) != "W/" && v == etag;
  }
  return !last_modified.empty() && v == last_modified;
}

namespace {

// True if the comma-separated `list` has `name` as a member (case-insensitive).
bool lists(std::string_view list, std::string_view name) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (iequals(trim_ows(list.substr(0, comma)), name)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

bool kept_response_header(std::string_view name, std::string_view connection) {
  static constexpr std::string_view kNotKept[] = {
      // hop-by-hop (RFC 9110 §7.6.1) and their relatives
      "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding",
      "Upgrade", "Proxy-Authenticate", "Proxy-Authentication-Info",
      // kept apart, or computed for each reply by the node
      "Content-Type", "ETag", "Last-Modified", "Cache-Control", "Expires", "Date", "Age",
      "Content-Length", "Content-Range", "Accept-Ranges", "X-Cache",
      // one viewer's
      "Set-Cookie", "Set-Cookie2"};
  if (name.empty()) return false;
  for (std::string_view not_kept : kNotKept) {
    if (iequals(name, not_kept)) return false;
  }
  if (name.size() >= 15 && iequals(name.substr(0, 15), "Access-Control-")) return false;
  return !lists(connection, name);
}

bool relayed_as_is(int status) {
  return (status > 200 && status < 300 && status != 206) ||
         (status >= 300 && status < 400 && status != 304);
}

bool updated_by_304(std::string_view name) {
  for (std::string_view fixed :
       {"Content-Encoding", "Content-MD5", "Content-Length", "Content-Range", "ETag"}) {
    if (iequals(name, fixed)) return false;
  }
  return true;
}

bool varies_on_everything(std::string_view vary) {
  while (!vary.empty()) {
    const size_t comma = vary.find(',');
    if (trim_ows(vary.substr(0, comma)) == "*") return true;
    if (comma == std::string_view::npos) break;
    vary.remove_prefix(comma + 1);
  }
  return false;
}

namespace {

// Reads exactly `n` digits at `pos`; false if any is not a digit.
bool fixed_digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

// "Jan".."Dec" at `pos` (case-sensitive, RFC 9110 §5.6.7) → 0..11.
int month_at(std::string_view s, size_t pos) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (pos + 3 > s.size()) return -1;
  for (int m = 0; m < 12; ++m) {
    if (s.substr(pos, 3) == kMonths[m]) return m;
  }
  return -1;
}

bool is_day_name(std::string_view name, bool long_form) {
  static constexpr std::string_view kShort[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr std::string_view kLong[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                               "Friday", "Saturday", "Sunday"};
  for (int d = 0; d < 7; ++d) {
    if (name == (long_form ? kLong[d] : kShort[d])) return true;
  }
  return false;
}

// "HH:MM:SS" at `pos`.
bool time_of_day_at(std::string_view s, size_t pos, tm& t) {
  if (pos + 8 > s.size() || s[pos + 2] != ':' || s[pos + 5] != ':') return false;
  return fixed_digits(s, pos, 2, t.tm_hour) && fixed_digits(s, pos + 3, 2, t.tm_min) &&
         fixed_digits(s, pos + 6, 2, t.tm_sec) && t.tm_hour <= 23 && t.tm_min <= 59 &&
         t.tm_sec <= 60;
}

std::optional<int64_t> to_unix(tm& t, int year, int month, int day) {
  if (month < 0 || day < 1 || day > 31) return std::nullopt;
  t.tm_year = year - 1900;
  t.tm_mon = month;
  t.tm_mday = day;
  return static_cast<int64_t>(timegm(&t));
}

}  // namespace

std::optional<int64_t> parse_http_date(std::string_view text) {
  // Exactly the three grammars of RFC 9110 §5.6.7, character by character: a lenient
  // reading ("Sun,  6 Nov 1994 8:49:37 GMT") could give a date the origin never meant,
  // and an Expires read wrongly can freeze a live playlist until then.
  const std::string_view s = trim_ows(text);
  tm t{};
  int day = 0, year = 0;
  const size_t comma = s.find(',');
  if (comma == 3) {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    if (s.size() != 29 || !is_day_name(s.substr(0, 3), false) || s[4] != ' ' || s[7] != ' ' ||
        s[11] != ' ' || s[16] != ' ' || s[25] != ' ' || s.substr(26) != "GMT" ||
        !fixed_digits(s, 5, 2, day) || !fixed_digits(s, 12, 4, year) || !time_of_day_at(s, 17, t)) {
      return std::nullopt;
    }
    return to_unix(t, year, month_at(s, 8), day);
  }
  if (comma != std::string_view::npos) {
    // rfc850-date: "Sunday, 06-Nov-94 08:49:37 GMT"
    const std::string_view r = s.substr(comma);
    if (!is_day_name(s.substr(0, comma), true) || r.size() != 24 || r[1] != ' ' || r[4] != '-' ||
        r[8] != '-' || r[11] != ' ' || r[20] != ' ' || r.substr(21) != "GMT" ||
        !fixed_digits(r, 2, 2, day) || !fixed_digits(r, 9, 2, year) || !time_of_day_at(r, 12, t)) {
      return std::nullopt;
    }
    // A two-digit year: the most recent such year not more than 50 years ahead (read
    // without a clock as 1970–2069).
    return to_unix(t, year < 70 ? 2000 + year : 1900 + year, month_at(r, 5), day);
  }
  // asctime-date: "Sun Nov  6 08:49:37 1994" (a one-digit day after a space)
  if (s.size() != 24 || !is_day_name(s.substr(0, 3), false) || s[3] != ' ' || s[7] != ' ' ||
      s[10] != ' ' || s[19] != ' ' || !fixed_digits(s, 20, 4, year) || !time_of_day_at(s, 11, t)) {
    return std::nullopt;
  }
  if (s[8] == ' ') {
    if (!fixed_digits(s, 9, 1, day)) return std::nullopt;
  } else if (!fixed_digits(s, 8, 2, day)) {
    return std::nullopt;
  }
  return to_unix(t, year, month_at(s, 4), day);
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
