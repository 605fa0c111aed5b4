#include "cmcd/quality_meter.h"

#include <strings.h>

#include <random>
#include <string_view>

#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/url.h"
#include "http/server/http_exchange.h"

namespace cmcd {
namespace {

constexpr core::CounterFamily kCmcdReports{
    "cmcd_reports_total", "Requests carrying CMCD, by whether it could be read", "result"};

constexpr const char* kLog = "cmcd";

// A Prometheus label value as the text format writes it (backslash, quote and newline escaped).
std::string label_escaped(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// A key no player can guess, so no player can choose ids that collide (playback_quality.h).
PlaybackQuality::Limits with_random_session_key(PlaybackQuality::Limits limits) {
  std::random_device random;  // the kernel's CSPRNG on Linux
  for (uint64_t& word : limits.session_key) word = (uint64_t(random()) << 32) | uint64_t(random());
  return limits;
}

// Milliseconds as seconds in the fewest digits: 100 → "0.1", 15000 → "15".
std::string seconds_text(int64_t ms) {
  std::string out = std::to_string(ms / 1000);
  std::string fraction = std::to_string(1000 + ms % 1000).substr(1);
  while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
  if (!fraction.empty()) out += "." + fraction;
  return out;
}

// {"bound":N,...,"over_last":N}: the buckets with sessions, by their upper bound.
template <size_t N>
void append_mix(std::string& out, const std::array<size_t, N + 1>& mix,
                const std::array<int64_t, N>& bounds) {
  out += "{";
  bool first = true;
  for (size_t bucket = 0; bucket < mix.size(); ++bucket) {
    if (mix[bucket] == 0) continue;
    out += first ? R"(")" : R"(,")";
    first = false;
    if (bucket < bounds.size()) {
      core::append_json_number(out, "", bounds[bucket]);
    } else {
      core::append_json_number(out, "over_", bounds.back());
    }
    core::append_json_number(out, R"(":)", static_cast<int64_t>(mix[bucket]));
  }
  out += "}";
}

}  // namespace

QualityMeter::QualityMeter(core::MetricsRegistry& metrics, const core::Clock& clock,
                           PlaybackQuality::Limits limits)
    : metrics_(metrics),
      clock_(clock),
      read_(kCmcdReports.in(metrics, "read")),
      malformed_(kCmcdReports.in(metrics, "malformed")),
      buffer_length_(metrics.histogram("playback_buffer_length_seconds",
                                       "Buffer lengths the players reported (CMCD bl)",
                                       {0.5, 1, 2, 4, 8, 15, 30, 60})),
      bitrate_(metrics.histogram(
          "playback_bitrate_bytes_per_second",
          "Encoded bitrates of the media objects the players asked for (CMCD br), "
          "in bytes per second as Prometheus wants base units (0.25 to 20 Mbit/s)",
          {31250, 62500, 125e3, 250e3, 375e3, 625e3, 1e6, 1.5e6, 2.5e6})),
      latency_(metrics.histogram("playback_live_latency_seconds",
                                 "Latencies behind live the players reported (CMCD ltc)",
                                 {0.5, 1, 1.5, 2, 3, 4, 6, 8, 10, 15, 30, 60})),
      quality_(with_random_session_key(limits)) {
  register_gauges(metrics);
}

PlaybackQuality::Summary QualityMeter::summary_now() {
  std::lock_guard lock(mutex_);
  return quality_.summary(clock_.now());
}

void QualityMeter::register_gauges(core::MetricsRegistry& metrics) {
  metrics.gauge_fn("playback_sessions_memory_bytes",
                   "What the kept player sessions cost in memory (bounded by their count)", [this] {
                     std::lock_guard lock(mutex_);
                     return static_cast<double>(quality_.memory_bytes());
                   });
  metrics.gauge_fn("playback_sessions_reporting",
                   "Player sessions heard from (CMCD sid) within the idle time", [this] {
                     std::lock_guard lock(mutex_);
                     quality_.expire(clock_.now());  // no summary: one per scrape is enough
                     return static_cast<double>(quality_.sessions());
                   });
  for (const auto& [kind, label] : {std::pair{StreamKind::regular, "regular"},
                                    std::pair{StreamKind::low_latency, "low_latency"}}) {
    const auto at = static_cast<size_t>(kind);
    const std::string labels = std::string("kind=\"") + label + "\"";
    metrics.gauge_fn(
        "playback_sessions_with_buffer",
        "Player sessions that reported a buffer length, by the kind of stream they play (CMCD st)",
        [this, at] { return static_cast<double>(summary_now().by_kind[at].with_buffer); }, labels);
    metrics.gauge_fn(
        "playback_sessions_healthy_buffer",
        "Player sessions whose latest buffer length is at or above their stream kind's bar "
        "(regular: healthy_buffer_ms; low_latency: one part)",
        [this, at] { return static_cast<double>(summary_now().by_kind[at].healthy); }, labels);
  }
  // Cumulative, as a histogram's buckets: the sessions at or below each bound (+Inf: all). A
  // gauge family, so the bound is not named "le" (Prometheus keeps that label for histograms).
  for (size_t bucket = 0; bucket < kLatencyBuckets; ++bucket) {
    const std::string le = bucket < kLatencyBucketsMs.size()
                               ? seconds_text(kLatencyBucketsMs[bucket])
                               : std::string("+Inf");
    metrics.gauge_fn(
        "playback_sessions_by_live_latency",
        "Player sessions whose latest reported latency behind live (CMCD ltc) is at most "
        "at_most_s seconds",
        [this, bucket] {
          const PlaybackQuality::Summary s = summary_now();
          size_t total = 0;
          for (size_t i = 0; i <= bucket; ++i) total += s.latency_mix[i];
          return static_cast<double>(total);
        },
        "at_most_s=\"" + le + "\"");
  }
}

std::optional<Data> QualityMeter::observe(const http::HttpExchange& ex,
                                          const std::optional<std::string>& raw_query_value,
                                          std::string_view channel, std::string_view node) {
  Data data;
  bool present = false;
  std::string error;
  if (raw_query_value) {
    present = true;
    auto decoded = core::percent_decode(*raw_query_value);
    error = decoded ? parse_into(*decoded, data) : "malformed percent-encoding";
  }
  // One pass over the request's headers (most requests carry no CMCD at all).
  for (const http::HttpHeader& h : ex.headers_with_prefix("CMCD-")) {
    if (!error.empty()) break;
    bool known = false;
    for (std::string_view name : kHeaderNames)
      known = known || (h.name.size() == name.size() &&
                        strncasecmp(h.name.data(), name.data(), name.size()) == 0);
    if (!known) continue;
    present = true;
    error = parse_into(h.value, data);
  }
  if (!present) return std::nullopt;
  if (!error.empty()) {
    malformed_.inc();
    LOG_DEBUG(kLog, "a CMCD report could not be read: ", error);
    return std::nullopt;
  }
  read_.inc();
  if (data.buffer_length_ms)
    buffer_length_.observe(static_cast<double>(*data.buffer_length_ms) / 1000.0);
  if (data.bitrate_kbps) bitrate_.observe(static_cast<double>(*data.bitrate_kbps) * 1000.0 / 8.0);
  if (data.live_latency_ms) latency_.observe(static_cast<double>(*data.live_latency_ms) / 1000.0);
  PlaybackQuality::Place place{std::string(channel), std::string(node)};
  PlaybackQuality::Recorded recorded;
  {
    std::lock_guard lock(mutex_);
    if (place.channel.empty() && data.content_id.empty()) {
      place.channel = "unknown";
    } else if (place.channel.empty()) {
      place.channel = channel_labels_.count(data.content_id) != 0
                          ? data.content_id
                          : std::string(PlaybackQuality::kOtherPlace);
    }
    recorded = quality_.record(clock_.now(), place, data);
  }
  if (recorded.stall) count_stall(place);
  return data;
}

void QualityMeter::set_channel_labels(const std::vector<std::string>& channels) {
  std::set<std::string, std::less<>> labels;
  for (const std::string& c : channels) {
    if (labels.size() >= kMaxChannelLabels) break;
    labels.insert(c);
  }
  std::lock_guard lock(mutex_);
  channel_labels_ = std::move(labels);
}

void QualityMeter::count_stall(const PlaybackQuality::Place& where) {
  std::lock_guard lock(stall_mutex_);
  auto it = stall_counters_.find(where);
  if (it == stall_counters_.end()) {
    const bool full = stall_counters_.size() >= quality_.limits().max_places;
    const PlaybackQuality::Place place =
        full ? PlaybackQuality::Place{std::string(PlaybackQuality::kOtherPlace),
                                      std::string(PlaybackQuality::kOtherPlace)}
             : where;
    it = stall_counters_.find(place);
    if (it == stall_counters_.end()) {
      core::Counter& counter =
          metrics_.counter("playback_stalls_total",
                           "Buffer starvations the players reported (CMCD bs), by channel and node",
                           "channel=\"" + label_escaped(place.channel) + "\",node=\"" +
                               label_escaped(place.node) + "\"");
      it = stall_counters_.emplace(place, &counter).first;
    }
  }
  it->second->inc();
}

std::string QualityMeter::json() {
  const core::SteadyTime now = clock_.now();
  std::lock_guard lock(mutex_);
  if (json_made_ && now - *json_made_ < kJsonLifetime) return json_;
  const PlaybackQuality::Summary s = quality_.summary(now);
  std::string& out = json_;
  out.clear();
  auto number = [&out](std::string_view before, int64_t value) {
    core::append_json_number(out, before, value);
  };
  number(R"({"sessions":)", s.sessions);
  number(R"(,"sessions_with_buffer":)", s.sessions_with_buffer);
  number(R"(,"healthy_buffer":)", s.healthy_buffer);
  number(R"(,"healthy_buffer_ms":)", quality_.limits().healthy_buffer_ms);
  const PlaybackQuality::Buffers& ll = s.by_kind[static_cast<size_t>(StreamKind::low_latency)];
  number(R"(,"low_latency_sessions_with_buffer":)", ll.with_buffer);
  number(R"(,"low_latency_healthy_buffer":)", ll.healthy);
  number(R"(,"healthy_buffer_low_latency_ms":)", quality_.limits().healthy_buffer_low_latency_ms);
  number(R"(,"stalls_total":)", s.stalls_total);
  out += R"(,"bitrate_mix":)";
  append_mix(out, s.bitrate_mix, kBitrateBucketsKbps);
  number(R"(,"sessions_with_latency":)", s.sessions_with_latency);
  out += R"(,"latency_mix":)";
  append_mix(out, s.latency_mix, kLatencyBucketsMs);
  out += "}";
  json_made_ = now;
  return out;
}

}  // namespace cmcd
