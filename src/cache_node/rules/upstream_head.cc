#include "cache_node/rules/upstream_head.h"

#include <strings.h>

#include <algorithm>

#include "cache_node/rules/http_semantics.h"

namespace cache_node {

// Every line of the field `name` in a response head, joined as one list
// (RFC 9110 §5.3); nullopt when the head has none.
std::optional<std::string> joined_field(const http::FetchHead& head, std::string_view name) {
  std::optional<std::string> out;
  for (const auto& h : head.headers) {
    if (h.name.size() != name.size() || strncasecmp(h.name.c_str(), name.data(), name.size()) != 0)
      continue;
    if (out) {
      *out += ", ";
      *out += h.value;
    } else {
      out = h.value;
    }
  }
  return out;
}

// The headers of `head` kept with the copy (kept_response_header), as ChunkMeta::
// kept_headers, after those of `first` (lines of the same form; the names `first`
// has are not taken again), within kMaxKeptHeaders and kMaxKeptHeaderBytes; what
// does not fit is counted in `dropped`.
std::string kept_headers_of(const http::FetchHead& head, std::string_view first, size_t& dropped,
                            bool from_304) {
  const std::string connection = joined_field(head, "Connection").value_or("");
  std::string out(first);
  size_t count = static_cast<size_t>(std::count(out.begin(), out.end(), '\n'));
  auto in_first = [first](std::string_view name) {
    for (size_t at = 0; at < first.size();) {
      const size_t end = first.find('\n', at);
      const std::string_view line = first.substr(at, end - at);
      const std::string_view line_name = line.substr(0, line.find(':'));
      if (line_name.size() == name.size() &&
          strncasecmp(line_name.data(), name.data(), name.size()) == 0)
        return true;
      if (end == std::string_view::npos) break;
      at = end + 1;
    }
    return false;
  };
  for (const auto& h : head.headers) {
    if (!kept_response_header(h.name, connection) || in_first(h.name) ||
        (from_304 && !updated_by_304(h.name))) {
      continue;
    }
    const size_t line = h.name.size() + 2 + h.value.size() + 1;
    if (count == kMaxKeptHeaders || out.size() + line > kMaxKeptHeaderBytes ||
        h.name.find_first_of(":\r\n") != std::string::npos ||
        h.value.find_first_of("\r\n") != std::string::npos) {
      ++dropped;
      continue;
    }
    out.append(h.name).append(": ").append(h.value).push_back('\n');
    ++count;
  }
  return out;
}

// Kept header lines (ChunkMeta::kept_headers) as a head's headers, to merge with a 304's.
http::FetchHead head_of_lines(std::string_view lines) {
  http::FetchHead head;
  for (size_t at = 0; at < lines.size();) {
    const size_t end = lines.find('\n', at);
    const std::string_view line = lines.substr(at, end - at);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      head.headers.push_back({std::string(line.substr(0, colon)), std::string(value)});
    }
    if (end == std::string_view::npos) break;
    at = end + 1;
  }
  return head;
}

// Origin answers a viewer is told as they are (in our error shape), rather than as a 502:
// 403, 429/503 with the origin's Retry-After (delta-seconds; else 1 s), and a 504 (the
// origin's own upstream timed out).
namespace {

struct RelayedStatus {
  int status;
  const char* code;
  const char* message;
};
constexpr RelayedStatus kRelayedStatuses[] = {
    {403, "origin_forbidden", "The origin refused to serve this chunk."},
    {429, "origin_busy", "The origin asks to retry this chunk later."},
    {503, "origin_unavailable", "The origin cannot serve this chunk now."},
    {504, "origin_timeout", "The origin's own upstream timed out for this chunk."},
};

}  // namespace

std::optional<http::UpstreamErrorReply> relayed_status(int origin_status) {
  for (const RelayedStatus& r : kRelayedStatuses) {
    if (r.status == origin_status) return http::UpstreamErrorReply{r.status, {r.code, r.message}};
  }
  return std::nullopt;
}

std::string retry_after_of(const http::FetchHead& head) {
  std::string value = head.header("Retry-After").value_or("");
  const bool delta =
      !value.empty() && value.size() <= 6 &&
      std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; });
  return delta ? value : "1";
}

// Upstream failures a stale copy may answer for (RFC 5861 stale-if-error): the
// upstream is unreachable, slow, broken or in trouble (5xx). A 404/410 or
// another refusal is an answer, not an outage.
bool stale_may_answer(http::UpstreamFailure failure, int origin_status) {
  switch (failure) {
    case http::UpstreamFailure::unreachable:
    case http::UpstreamFailure::timeout:
    case http::UpstreamFailure::broken:
    case http::UpstreamFailure::truncated:
      return true;
    case http::UpstreamFailure::bad_status:
      return origin_status >= 500;
    case http::UpstreamFailure::not_found:
    case http::UpstreamFailure::too_large:
      return false;
  }
  return false;
}

}  // namespace cache_node
