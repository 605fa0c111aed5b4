// A server's view of its players' playback (CMCD, cmcd.h): reads each request's report from
// the `CMCD=` query argument (taken out of the target by the caller, who must keep it out of
// signatures and cache keys) and the four CMCD headers, adds it to a PlaybackQuality, and
// exposes the result as Prometheus families and as JSON for /health and the dashboard:
//   cmcd_reports_total{result="read"|"malformed"}
//   playback_stalls_total{channel,node}            reports of a buffer starvation (bs)
//   playback_buffer_length_seconds                 histogram of reported buffer lengths (bl)
//   playback_bitrate_bytes_per_second               histogram of media objects' bitrates (br)
//   playback_live_latency_seconds                  histogram of reported latencies behind
//                                                  live (ltc)
//   playback_sessions_reporting                    sessions heard within the idle time
//   playback_sessions_with_buffer{kind}            of those, with a buffer length, by stream kind
//   playback_sessions_healthy_buffer{kind}         of those, buffer at or above their kind's bar
//   playback_sessions_by_live_latency{at_most_s}   sessions whose latest ltc is at most
//                                                  at_most_s seconds
//   playback_sessions_memory_bytes                 what the kept sessions cost (bounded)
// Any thread: one lock around the PlaybackQuality; the stall counters have their own, taken
// without the first, so a scrape (registry lock, then the quality lock) never waits in a cycle.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cmcd/playback_quality.h"
#include "core/clock.h"

namespace core {
class Counter;
class Histogram;
class MetricsRegistry;
}  // namespace core
namespace http {
class HttpExchange;
}  // namespace http

namespace cmcd {

class QualityMeter {
 public:
  QualityMeter(core::MetricsRegistry& metrics, const core::Clock& clock,
               PlaybackQuality::Limits limits);
  QualityMeter(const QualityMeter&) = delete;
  QualityMeter& operator=(const QualityMeter&) = delete;

  // Reads the request's CMCD (`raw_query_value`: the CMCD argument's value still percent-encoded,
  // or nullopt) and records it at (`channel`, `node`); an empty `channel` is the report's content
  // id (cid) when it is one of set_channel_labels(), "other" when it is not, "unknown" without
  // one: players choose their cid, so they cannot grow the label set. A request without CMCD
  // costs one pass over its headers.
  // Returns the report when one was read (a caller may act on it: a node prefetches `nor`).
  std::optional<Data> observe(const http::HttpExchange& ex,
                              const std::optional<std::string>& raw_query_value,
                              std::string_view channel, std::string_view node);

  // {"sessions":N,"sessions_with_buffer":N,"healthy_buffer":N,"healthy_buffer_ms":4000,
  //  "low_latency_sessions_with_buffer":N,"low_latency_healthy_buffer":N,
  //  "healthy_buffer_low_latency_ms":330,"stalls_total":N,
  //  "bitrate_mix":{"300":N,...,"20000":N,"over_20000":N},
  //  "sessions_with_latency":N,"latency_mix":{"100":N,...,"60000":N,"over_60000":N}}: the
  // totals count both kinds, each judged by its own bar; sessions by the bucket of their latest
  // bitrate (kBitrateBucketsKbps, an upper bound in kbps) and latency behind live
  // (kLatencyBucketsMs, an upper bound in ms), only buckets with sessions. Under 1,100 bytes
  // whatever the players report; made at most once a second (kJsonLifetime), so asking it often
  // costs a copy.
  std::string json();
  static constexpr std::chrono::milliseconds kJsonLifetime{1000};

  // The content ids observe() labels stalls with when its caller names no channel (a cache
  // node's playback.channels); at most kMaxChannelLabels are kept. Any thread; applies to
  // reports from then on.
  void set_channel_labels(const std::vector<std::string>& channels);
  static constexpr size_t kMaxChannelLabels = 1000;

 private:
  void count_stall(const PlaybackQuality::Place& where);
  void register_gauges(core::MetricsRegistry& metrics);
  PlaybackQuality::Summary summary_now();

  core::MetricsRegistry& metrics_;
  const core::Clock& clock_;
  core::Counter& read_;
  core::Counter& malformed_;
  core::Histogram& buffer_length_;
  core::Histogram& bitrate_;
  core::Histogram& latency_;

  std::mutex mutex_;
  PlaybackQuality quality_;                            // guarded by mutex_
  std::set<std::string, std::less<>> channel_labels_;  // guarded by mutex_
  std::string json_;  // guarded by mutex_: the last json(), made at json_made_
  std::optional<core::SteadyTime> json_made_;

  std::mutex stall_mutex_;
  std::map<PlaybackQuality::Place, core::Counter*> stall_counters_;  // guarded by stall_mutex_
};

}  // namespace cmcd
