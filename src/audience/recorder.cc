#include "audience/recorder.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "audience/report_text.h"
#include "core/json.h"

namespace audience {

namespace {

constexpr std::string_view kKindNames[kRequestKinds] = {"login",  "refresh", "channels", "access",
                                                        "master", "media",   "steering", "segment",
                                                        "key",    "part"};

std::string opt(std::optional<double> v) {
  return v ? number(*v) : "null";
}

std::string summary_json(const std::vector<double>& values) {
  std::string out = "{\"count\":" + std::to_string(values.size());
  out += ",\"p50\":" + opt(percentile(values, 0.5));
  out += ",\"p95\":" + opt(percentile(values, 0.95));
  out += ",\"p99\":" + opt(percentile(values, 0.99));
  out += ",\"max\":" + opt(percentile(values, 1.0)) + "}";
  return out;
}

// For ratios of an estimate to the truth, where both tails matter: min and p5 too, and the
// share within ±30 % (issue 22's bar for announced waits).
std::string two_sided_summary_json(const std::vector<double>& values) {
  const auto within =
      std::count_if(values.begin(), values.end(), [](double r) { return r >= 0.7 && r <= 1.3; });
  std::string out = "{\"within_30_percent\":";
  out += values.empty() ? std::string("null")
                        : number(static_cast<double>(within) / static_cast<double>(values.size()));
  out += ",\"min\":" + opt(percentile(values, 0.0));
  out += ",\"p5\":" + opt(percentile(values, 0.05)) + "," + summary_json(values).substr(1);
  return out;
}

// The members of a JSON object, one a (name, value) of `items` in their order:
// "name":<what append_value(out, value) appends>,...
template <typename Items, typename AppendValue>
void append_members_json(std::string& out, const Items& items, AppendValue append_value) {
  bool first = true;
  for (const auto& [name, value] : items) {
    if (!first) out += ",";
    first = false;
    core::append_json_string(out, name);
    out += ":";
    append_value(out, value);
  }
}

// The members of a JSON object of counts by name: "name":count,...
void append_counts_json(std::string& out, const std::map<std::string, uint64_t>& counts) {
  append_members_json(out, counts,
                      [](std::string& o, uint64_t count) { o += std::to_string(count); });
}

}  // namespace

std::string_view request_kind_name(RequestKind kind) {
  return kKindNames[static_cast<size_t>(kind)];
}

std::optional<double> percentile(std::vector<double> values, double q) {
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  const double rank = std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(values.size()));
  const size_t index = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return values[std::min(index, values.size() - 1)];
}

void Reservoir::add(double value) {
  ++seen_;
  if (values_.size() < capacity_) {
    values_.push_back(value);
    return;
  }
  std::uniform_int_distribution<uint64_t> pick(0, seen_ - 1);
  const uint64_t j = pick(random_);
  if (j < capacity_) values_[j] = value;
}

Recorder::Recorder(double duration_s, std::vector<WindowSpec> windows, uint32_t seed)
    : duration_s_(duration_s), windows_(std::move(windows)) {
  const size_t seconds = static_cast<size_t>(std::ceil(duration_s)) + 1;
  per_second_.resize(seconds);
  errors_per_second_.resize(seconds);
  stalls_per_second_.resize(seconds);
  behind_live_per_second_.resize(seconds);
  behind_live_max_per_second_.resize(seconds, 0);
  ticks_.resize(seconds);
  for (size_t k = 0; k < kRequestKinds; ++k)
    latencies_.emplace_back(100'000, seed + static_cast<uint32_t>(k));
  for (size_t w = 0; w < windows_.size(); ++w)
    window_playlist_ms_.emplace_back(100'000, seed + 100 + static_cast<uint32_t>(w));
}

size_t Recorder::second(double now) const {
  const double s = std::clamp(now, 0.0, duration_s_);
  return std::min(static_cast<size_t>(s), per_second_.size() - 1);
}

void Recorder::request(RequestKind kind, double now, double latency_s, int status,
                       uint64_t /*bytes*/, bool planned) {
  const auto k = static_cast<size_t>(kind);
  ++totals_[k];
  ++per_second_[second(now)][k];
  latencies_[k].add(latency_s * 1000);
  if (kind == RequestKind::media) {
    for (size_t w = 0; w < windows_.size(); ++w) {
      if (now >= windows_[w].from_s && now < windows_[w].until_s)
        window_playlist_ms_[w].add(latency_s * 1000);
    }
  }
  if (planned) {
    ++planned_counts_[std::string(request_kind_name(kind)) + " " + std::to_string(status)];
  } else if (status == 0 || status >= 400) {
    ++errors_per_second_[second(now)];
    ++error_counts_[std::string(request_kind_name(kind)) + " " +
                    (status ? std::to_string(status) : "transport")];
  }
}

uint64_t Recorder::stalls_so_far() const {
  uint64_t n = 0;
  for (auto s : stalls_per_second_) n += s;
  return n;
}

void Recorder::stall_began(double at_s) {
  ++stalls_per_second_[second(at_s)];
}

void Recorder::behind_live(double now, double latency_s) {
  if (!std::isfinite(latency_s)) return;
  behind_live_.add(latency_s);
  const size_t s = second(now);
  auto& histogram = behind_live_per_second_[s];
  if (histogram.empty()) histogram.resize(kBehindLiveBins);
  const double bin = std::floor(std::max(0.0, latency_s) / kBehindLiveBinS);
  ++histogram[std::min(kBehindLiveBins - 1, static_cast<size_t>(std::min(bin, 1e9)))];
  behind_live_max_per_second_[s] = std::max(behind_live_max_per_second_[s], latency_s);
}

std::vector<double> Recorder::behind_live_spreads() const {
  std::vector<double> out;
  for (size_t s = 0; s < behind_live_per_second_.size(); ++s) {
    const auto p5 = behind_live_in_second(s, 0.05), p95 = behind_live_in_second(s, 0.95);
    if (p5 && p95) out.push_back(std::max(0.0, *p95 - *p5));
  }
  return out;
}

std::optional<double> Recorder::behind_live_in_second(size_t s, double q) const {
  if (s >= behind_live_per_second_.size() || behind_live_per_second_[s].empty())
    return std::nullopt;
  if (q >= 1) return behind_live_max_per_second_[s];
  const auto& histogram = behind_live_per_second_[s];
  uint64_t total = 0;
  for (auto n : histogram) total += n;
  // Nearest rank, as percentile(); a bin stands for its middle.
  const auto rank = std::max<uint64_t>(
      1, static_cast<uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(total))));
  uint64_t seen = 0;
  for (size_t b = 0; b < histogram.size(); ++b) {
    seen += histogram[b];
    if (seen >= rank)
      return std::min((static_cast<double>(b) + 0.5) * kBehindLiveBinS,
                      behind_live_max_per_second_[s]);
  }
  return behind_live_max_per_second_[s];
}

void Recorder::tick(double now, uint64_t arrived, uint64_t playing, uint64_t queued,
                    uint64_t stalled) {
  // Ticks come about once a second; a second the timer skipped takes the next reading.
  const size_t at = second(now);
  for (size_t s = ticked_ ? last_tick_ + 1 : 0; s <= at; ++s)
    ticks_[s] = Tick{arrived, playing, queued, stalled};
  ticks_[at] = Tick{arrived, playing, queued, stalled};
  last_tick_ = at;
  ticked_ = true;
}

void Recorder::origin_fetches(const std::string& source, double value) {
  Counter& c = origin_fetches_[source];
  if (c.seen) c.delta += value >= c.last_raw ? value - c.last_raw : value;  // a restart zeroed it
  c.last_raw = value;
  c.seen = true;
}

uint64_t Recorder::errors() const {
  uint64_t n = 0;
  for (const auto& [key, count] : error_counts_) n += count;
  return n;
}

std::map<std::string, double> Recorder::budget(const std::string& name) const {
  std::map<std::string, double> out;
  for (const auto& w : windows_) {
    if (w.name != name) continue;
    const size_t from = second(w.from_s), until = second(w.until_s);
    double viewer_seconds = 0;
    std::array<double, kRequestKinds> counts{};
    for (size_t s = from; s < until; ++s) {
      viewer_seconds += static_cast<double>(ticks_[s].playing);
      for (size_t k = 0; k < kRequestKinds; ++k) counts[k] += per_second_[s][k];
    }
    if (viewer_seconds <= 0) return out;
    double total = 0, balancer = 0;
    for (size_t k = 0; k < kRequestKinds; ++k) {
      const double per_minute = counts[k] * 60 / viewer_seconds;
      out[std::string(kKindNames[k])] = per_minute;
      total += per_minute;
      // Segments and parts go to the cache nodes; everything else to the balancer.
      if (k != static_cast<size_t>(RequestKind::segment) &&
          k != static_cast<size_t>(RequestKind::part))
        balancer += per_minute;
    }
    out["total"] = total;
    out["balancer"] = balancer;
    return out;
  }
  return out;
}

uint64_t Recorder::queue_order_inversions() const {
  std::vector<const QueueRecord*> by_ticket;
  for (const auto& q : queue_) by_ticket.push_back(&q);
  std::sort(by_ticket.begin(), by_ticket.end(),
            [](const QueueRecord* a, const QueueRecord* b) { return a->ticket > b->ticket; });
  uint64_t inversions = 0;
  double first_later_admission = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < by_ticket.size();) {
    // Equal tickets (several balancers' numbering aside, never) are not ordered among themselves.
    size_t j = i;
    while (j < by_ticket.size() && by_ticket[j]->ticket == by_ticket[i]->ticket) ++j;
    for (size_t k = i; k < j; ++k) {
      if (by_ticket[k]->last_told_wait_at_s > first_later_admission) ++inversions;
    }
    for (size_t k = i; k < j; ++k) {
      if (by_ticket[k]->admitted_at_s > 0)
        first_later_admission = std::min(first_later_admission, by_ticket[k]->admitted_at_s);
    }
    i = j;
  }
  return inversions;
}

std::string Recorder::json(const std::string& scenario_name, double ran_s) const {
  std::string out = "{\"scenario\":";
  core::append_json_string(out, scenario_name);
  out += ",\"ran_s\":" + number(ran_s);
  append_viewers_json(out);
  out += ",\"fatal\":{";
  append_counts_json(out, fatal_);
  out += "},\"media_playlists\":{";
  append_counts_json(out, media_playlists_);
  out += "},\"requests\":{";
  for (size_t k = 0; k < kRequestKinds; ++k) {
    if (k) out += ",";
    out += "\"" + std::string(kKindNames[k]) + "\":{\"count\":" + std::to_string(totals_[k]) +
           ",\"latency_ms\":" + summary_json(latencies_[k].values()) + "}";
  }
  out += "},\"errors\":{";
  append_counts_json(out, error_counts_);
  out += "},\"waits_told\":{";
  append_counts_json(out, planned_counts_);
  out += "},\"queue\":{\"viewers\":" + std::to_string(queue_.size());
  append_queue_json(out);
  out += ",\"segments_distinct\":" + std::to_string(segment_names_.size());
  out += ",\"origin_fetches\":{";
  append_origin_fetches_json(out);
  out += "},\"windows\":{";
  append_windows_json(out);
  out += "},\"processes\":{";
  append_processes_json(out);
  out += "},\"per_second\":{";
  append_per_second_json(out);
  out += "}}\n";
  return out;
}

// From "viewers" to "audience_loop_lag_ms".
void Recorder::append_viewers_json(std::string& out) const {
  out += ",\"viewers\":{\"arrived\":" +
         std::to_string(
             ticks_.empty()
                 ? 0
                 : std::max_element(ticks_.begin(), ticks_.end(), [](const Tick& a, const Tick& b) {
                     return a.arrived < b.arrived;
                   })->arrived);
  out += ",\"started\":" + std::to_string(started_viewers_);
  out += ",\"with_stalls\":" + std::to_string(viewers_with_stalls_) + "}";
  out += ",\"startup_s\":" + summary_json(startups_);
  out += ",\"stalls\":{\"count\":" + std::to_string(stalls_total_) +
         ",\"stalled_s\":" + number(stalled_total_s_) + "}";
  out += ",\"failover_s\":" + summary_json(failovers_);
  out += ",\"behind_live_s\":{\"samples\":" + summary_json(behind_live_.values()) +
         ",\"viewer_mean\":" + summary_json(viewer_behind_live_mean_) +
         ",\"viewer_max\":" + summary_json(viewer_behind_live_max_) +
         ",\"spread_p5_p95\":" + summary_json(behind_live_spreads()) + "}";
  out += ",\"audience_loop_lag_ms\":" + summary_json(loop_lag_.values());
}

// The members of the "queue" object after "viewers", and its closing brace.
void Recorder::append_queue_json(std::string& out) const {
  uint64_t admitted = 0, admitted_unannounced = 0, answers_without_estimate = 0;
  std::vector<double> waits, ratio, ratio_all;
  for (const auto& q : queue_) {
    answers_without_estimate += q.answers_without_estimate;
    if (q.admitted_at_s <= 0) continue;
    ++admitted;
    waits.push_back(q.admitted_at_s - q.queued_at_s);
    if (q.told.empty()) {
      ++admitted_unannounced;
    } else if (const auto [at, told] = q.told.front(); q.admitted_at_s - at >= 1) {
      ratio.push_back(told / (q.admitted_at_s - at));
    }
    for (const auto& [at, told] : q.told) {
      const double left = q.admitted_at_s - at;
      if (left >= 1) ratio_all.push_back(told / left);
    }
  }
  uint64_t peak = 0;
  for (const auto& t : ticks_) peak = std::max(peak, t.queued);
  out += ",\"admitted\":" + std::to_string(admitted) + ",\"peak_length\":" + std::to_string(peak);
  out += ",\"order_inversions\":" + std::to_string(queue_order_inversions());
  out += ",\"answers_without_estimate\":" + std::to_string(answers_without_estimate);
  out += ",\"admitted_before_an_estimate\":" + std::to_string(admitted_unannounced);
  out += ",\"wait_s\":" + summary_json(waits) +
         ",\"announced_over_real\":" + two_sided_summary_json(ratio) +
         ",\"told_over_left\":" + two_sided_summary_json(ratio_all) + "}";
}

// The members of "origin_fetches".
void Recorder::append_origin_fetches_json(std::string& out) const {
  append_members_json(out, origin_fetches_, [this](std::string& o, const Counter& c) {
    o += "{\"fetches\":" + number(c.delta) + ",\"per_segment\":" +
         (segment_names_.empty() ? std::string("null")
                                 : number(c.delta / static_cast<double>(segment_names_.size()))) +
         "}";
  });
}

// The members of "windows".
void Recorder::append_windows_json(std::string& out) const {
  for (size_t i = 0; i < windows_.size(); ++i) {
    const auto& w = windows_[i];
    if (i > 0) out += ",";
    core::append_json_string(out, w.name);
    out += ":{\"from_s\":" + number(w.from_s) + ",\"until_s\":" + number(w.until_s);
    out += ",\"media_playlist_ms\":" + summary_json(window_playlist_ms_[i].values());
    uint64_t stalls = 0;
    for (size_t s = second(w.from_s); s < second(w.until_s); ++s) stalls += stalls_per_second_[s];
    out += ",\"stalls\":" + std::to_string(stalls) + ",\"requests_per_viewer_minute\":{";
    append_members_json(out, budget(w.name),
                        [](std::string& o, double per_minute) { o += number(per_minute); });
    out += "}}";
  }
}

// The members of "processes".
void Recorder::append_processes_json(std::string& out) const {
  append_members_json(
      out, processes_, [](std::string& o, const std::vector<ProcessSample>& samples) {
        double cpu_max = 0, rss_max = 0, cpu_sum = 0;
        size_t alive = 0;
        for (const auto& s : samples) {
          if (!s.alive) continue;
          ++alive;
          cpu_max = std::max(cpu_max, s.cpu_percent);
          cpu_sum += s.cpu_percent;
          rss_max = std::max(rss_max, s.rss_mib);
        }
        o += "{\"cpu_percent_mean\":" + number(alive ? cpu_sum / static_cast<double>(alive) : 0) +
             ",\"cpu_percent_max\":" + number(cpu_max) + ",\"rss_mib_max\":" + number(rss_max) +
             "}";
      });
}

// The members of "per_second".
void Recorder::append_per_second_json(std::string& out) const {
  out += "\"playing\":[";
  for (size_t s = 0; s < ticks_.size(); ++s)
    out += (s ? "," : "") + std::to_string(ticks_[s].playing);
  out += "],\"queued\":[";
  for (size_t s = 0; s < ticks_.size(); ++s)
    out += (s ? "," : "") + std::to_string(ticks_[s].queued);
  out += "],\"stalls_began\":[";
  for (size_t s = 0; s < stalls_per_second_.size(); ++s)
    out += (s ? "," : "") + std::to_string(stalls_per_second_[s]);
  out += "],\"errors\":[";
  for (size_t s = 0; s < errors_per_second_.size(); ++s)
    out += (s ? "," : "") + std::to_string(errors_per_second_[s]);
  out += "]";
  for (const auto& [name, q] :
       {std::pair{"behind_live_p5_s", 0.05}, std::pair{"behind_live_p50_s", 0.5},
        std::pair{"behind_live_p95_s", 0.95}, std::pair{"behind_live_max_s", 1.0}}) {
    out += ",\"" + std::string(name) + "\":[";
    for (size_t s = 0; s < behind_live_per_second_.size(); ++s)
      out += (s ? "," : "") + opt(behind_live_in_second(s, q));
    out += "]";
  }
  out += ",\"requests\":{";
  for (size_t k = 0; k < kRequestKinds; ++k) {
    out += std::string(k ? "," : "") + "\"" + std::string(kKindNames[k]) + "\":[";
    for (size_t s = 0; s < per_second_.size(); ++s)
      out += (s ? "," : "") + std::to_string(per_second_[s][k]);
    out += "]";
  }
  out += "}";
}

}  // namespace audience
