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
      quality_(with_random_session_key(limits)) {
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
  metrics.gauge_fn("playback_sessions_healthy_buffer",
                   "Player sessions whose latest buffer length is at or above the healthy bar",
                   [this] {
                     std::lock_guard lock(mutex_);
                     return static_cast<double>(quality_.summary(clock_.now()).healthy_buffer);
                   });
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
  number(R"(,"stalls_total":)", s.stalls_total);
  out += R"(,"bitrate_mix":{)";
  bool first = true;
  for (size_t bucket = 0; bucket < kBitrateBuckets; ++bucket) {
    if (s.bitrate_mix[bucket] == 0) continue;
    out += first ? R"(")" : R"(,")";
    first = false;
    if (bucket < kBitrateBucketsKbps.size()) {
      number("", kBitrateBucketsKbps[bucket]);
    } else {
      number("over_", kBitrateBucketsKbps.back());
    }
    number(R"(":)", s.bitrate_mix[bucket]);
  }
  out += "}}";
  json_made_ = now;
  return out;
}

}  // namespace cmcd
