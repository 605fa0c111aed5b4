// An upstream response head as the node reads it: fields joined from all their lines, the
// headers kept with a copy, the freshness fields, the origin statuses relayed to viewers, and
// which failures a stale copy may answer for (RFC 5861 stale-if-error). Pure: any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "cache_node/rules/freshness.h"
#include "http/client/coalesced_fetch.h"
#include "http/client/http_client.h"

namespace cache_node {

// Every line of the field `name` in a response head, joined as one list
// (RFC 9110 §5.3); nullopt when the head has none.
std::optional<std::string> joined_field(const http::FetchHead& head, std::string_view name);

// The headers of `head` kept with the copy (kept_response_header), as ChunkMeta::
// kept_headers, after those of `first` (lines of the same form; the names `first`
// has are not taken again), within kMaxKeptHeaders and kMaxKeptHeaderBytes; what
// does not fit is counted in `dropped`. With `from_304`, only the fields a 304 updates.
std::string kept_headers_of(const http::FetchHead& head, std::string_view first, size_t& dropped,
                            bool from_304 = false);

// A head's freshness fields, each joined from all its lines; view() borrows them.
struct HeadFreshness {
  explicit HeadFreshness(const http::FetchHead& head)
      : cache_control(joined_field(head, "Cache-Control").value_or("")),
        cdn_cache_control(joined_field(head, "CDN-Cache-Control")),
        expires(joined_field(head, "Expires")),
        date(head.header("Date")),
        age(joined_field(head, "Age")) {}
  UpstreamFreshness view() const {
    UpstreamFreshness out;
    out.cache_control = cache_control;
    if (cdn_cache_control) out.cdn_cache_control = *cdn_cache_control;
    if (expires) out.expires = *expires;
    if (date) out.date = *date;
    if (age) out.age = *age;
    return out;
  }
  std::string cache_control;
  std::optional<std::string> cdn_cache_control, expires, date, age;
};

// Kept header lines (ChunkMeta::kept_headers) as a head's headers, to merge with a 304's.
http::FetchHead head_of_lines(std::string_view lines);

// Origin answers a viewer is told as they are (in our error shape), rather than as a 502:
// 403, 429/503 with the origin's Retry-After (delta-seconds; else 1 s), and a 504 (the
// origin's own upstream timed out). nullopt for any other status.
std::optional<http::UpstreamErrorReply> relayed_status(int origin_status);
// The origin's Retry-After when it is delta-seconds (at most 6 digits), else "1".
std::string retry_after_of(const http::FetchHead& head);

// Upstream failures a stale copy may answer for (RFC 5861 stale-if-error): the
// upstream is unreachable, slow, broken or in trouble (5xx). A 404/410 or
// another refusal is an answer, not an outage.
bool stale_may_answer(http::UpstreamFailure failure, int origin_status);

}  // namespace cache_node
