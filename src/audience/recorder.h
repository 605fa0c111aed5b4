// What a rehearsal measured, kept as a pure function of events and the time passed in
// (seconds since the start of the run): requests by kind and second, latencies, errors,
// startup times, stalls, latency behind live, queue waits and order, per-window request
// budgets, process CPU and RSS, origin fetches from metrics. Bounded: per-second series stop at the
// scenario's duration, latency samples are a fixed-size reservoir per kind. One owner thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace audience {

enum class RequestKind : std::uint8_t {
  login,
  refresh,
  channels,
  access,
  master,
  media,
  steering,
  segment,
  key,
  part  // a Low-Latency HLS part, or the part a preload hint names
};
inline constexpr size_t kRequestKinds = 10;
std::string_view request_kind_name(RequestKind kind);

// Percentile `q` (0..1) of `values` by nearest rank; nullopt when empty. Sorts a copy.
std::optional<double> percentile(std::vector<double> values, double q);

// A fixed-size uniform sample of a stream of values (Vitter's algorithm R), seeded.
class Reservoir {
 public:
  explicit Reservoir(size_t capacity, uint32_t seed = 1) : capacity_(capacity), random_(seed) {}
  void add(double value);
  const std::vector<double>& values() const { return values_; }
  uint64_t seen() const { return seen_; }

 private:
  size_t capacity_;
  std::mt19937 random_;
  std::vector<double> values_;
  uint64_t seen_ = 0;
};

struct WindowSpec {
  std::string name;
  double from_s = 0;
  double until_s = 0;
};

struct QueueRecord {
  uint64_t ticket = 0;  // the latest ticket (a dropped ticket is replaced at the tail)
  double queued_at_s = 0;
  double last_told_wait_at_s = 0;  // the last queue answer before admission
  double admitted_at_s = 0;        // 0: never admitted
  // Queue answers whose estimated_wait_s was null (the deployment could not estimate yet):
  // counted, not compared.
  uint64_t answers_without_estimate = 0;
  // Every (time, estimated_wait_s) told as a number, the first 64: compared with the wait that
  // was left; the first is the viewer's announced wait.
  std::vector<std::pair<double, double>> told;
};

struct ProcessSample {
  double at_s = 0;
  double cpu_percent = 0;  // of one core, since the previous sample
  double rss_mib = 0;
  bool alive = true;
};

class Recorder {
 public:
  Recorder(double duration_s, std::vector<WindowSpec> windows, uint32_t seed);

  // A request of `kind` finished at `now` after `latency_s`; `status` 0 = transport failure.
  // `planned`: a queue place or busy answer with Retry-After (counted apart, not an error).
  void request(RequestKind kind, double now, double latency_s, int status, uint64_t bytes,
               bool planned = false);
  void startup(double startup_s) { startups_.push_back(startup_s); }
  void stall_began(double at_s);
  void failover(double seconds) { failovers_.push_back(seconds); }
  void fatal(const std::string& reason) { ++fatal_[reason]; }
  // A media playlist read: "full", "delta" (a delta update merged into the viewer's
  // segments) or "delta_unmerged" (one the viewer could not merge: it asks again in full).
  void media_playlist(const char* kind) { ++media_playlists_[kind]; }
  // How late (ms) the tool's own 100 ms timer fired: the run's health, not the deployment's.
  void loop_lag(double ms) { loop_lag_.add(ms); }
  void queued(const QueueRecord& record) { queue_.push_back(record); }
  void segment_asked(const std::string& name) {
    if (segment_names_.size() < 1'000'000) segment_names_.emplace(name, 0);
  }
  // Once a second: the viewers in each state now.
  void tick(double now, uint64_t arrived, uint64_t playing, uint64_t queued, uint64_t stalled);
  void process_sample(const std::string& name, const ProcessSample& sample) {
    processes_[name].push_back(sample);
  }
  // The counter total of `source`'s origin fetches at `now` (restarts of the counter added up).
  void origin_fetches(const std::string& source, double value);

  // How far behind live the frame on a playing viewer's screen is at `now` (the wall clock
  // minus its EXT-X-PROGRAM-DATE-TIME), sampled once a second per viewer.
  void behind_live(double now, double latency_s);
  // A viewer's mean and largest latency behind live over its run, once at the end (viewers
  // that never played dated media do not report).
  void viewer_behind_live(double mean_s, double max_s) {
    viewer_behind_live_mean_.push_back(mean_s);
    viewer_behind_live_max_.push_back(max_s);
  }

  // Per-viewer end figures, once per viewer at the end.
  void viewer_end(int stalls, double stalled_s, bool started) {
    stalls_total_ += stalls;
    stalled_total_s_ += stalled_s;
    started_viewers_ += started ? 1 : 0;
    if (stalls > 0) ++viewers_with_stalls_;
  }

  // The whole result as one JSON document.
  std::string json(const std::string& scenario_name, double ran_s) const;
  // A self-contained HTML page (inline SVG, no network) of the same figures.
  std::string html(const std::string& scenario_name, double ran_s) const;

  // Figures the report and the tests read.
  uint64_t requests(RequestKind kind) const { return totals_[static_cast<size_t>(kind)]; }
  uint64_t errors() const;
  const std::vector<double>& startups() const { return startups_; }
  uint64_t stalls() const { return stalls_total_; }  // after every viewer_end()
  uint64_t stalls_so_far() const;                    // stalls begun, while running
  // Requests per playing viewer per minute by kind, within the window named `name`.
  std::map<std::string, double> budget(const std::string& name) const;
  // Viewers told to wait after a later ticket had been admitted (each counts once): what
  // strict arrival order forbids, observed from the viewers' side whatever their polling.
  uint64_t queue_order_inversions() const;
  // Latency behind live over every sample (a reservoir), and over viewers' means.
  const std::vector<double>& behind_live_samples() const { return behind_live_.values(); }
  const std::vector<double>& viewer_behind_live_means() const { return viewer_behind_live_mean_; }
  // The q-quantile (0..1) of the samples taken in second `s`, to the histogram's 50 ms
  // resolution (the largest exactly); nullopt for a second without samples.
  std::optional<double> behind_live_in_second(size_t s, double q) const;
  // For each second with samples, how far apart the viewers were behind live (p95 - p5 of
  // that second's samples): what neighbours in a stand hear as cheers at different moments.
  std::vector<double> behind_live_spreads() const;

  // Latency behind live per second: a histogram of 50 ms bins up to 60 s (the last bin holds
  // everything beyond), allocated for the seconds that have samples.
  static constexpr double kBehindLiveBinS = 0.05;
  static constexpr size_t kBehindLiveBins = 1201;

 private:
  size_t second(double now) const;
  // Parts of json() and html(), each appending to `out` in the document's order.
  void append_viewers_json(std::string& out) const;
  void append_queue_json(std::string& out) const;
  void append_origin_fetches_json(std::string& out) const;
  void append_windows_json(std::string& out) const;
  void append_processes_json(std::string& out) const;
  void append_per_second_json(std::string& out) const;
  void append_summary_html(std::string& out) const;
  void append_viewer_charts_html(std::string& out) const;
  void append_load_charts_html(std::string& out) const;
  void append_tables_html(std::string& out) const;

  double duration_s_;
  std::vector<WindowSpec> windows_;
  std::vector<Reservoir> window_playlist_ms_;  // media playlist latency per window
  std::array<uint64_t, kRequestKinds> totals_{};
  std::vector<std::array<uint32_t, kRequestKinds>> per_second_;
  std::vector<uint32_t> errors_per_second_;
  std::vector<uint32_t> stalls_per_second_;
  struct Tick {
    uint64_t arrived = 0, playing = 0, queued = 0, stalled = 0;
  };
  std::vector<Tick> ticks_;
  size_t last_tick_ = 0;
  bool ticked_ = false;
  std::vector<Reservoir> latencies_;
  Reservoir loop_lag_{100'000, 7};
  std::map<std::string, uint64_t> error_counts_;    // "kind status"
  std::map<std::string, uint64_t> planned_counts_;  // "kind status"
  std::vector<double> startups_;
  std::vector<double> failovers_;
  std::map<std::string, uint64_t> fatal_;
  std::map<std::string, uint64_t> media_playlists_;
  std::vector<QueueRecord> queue_;
  std::map<std::string, int> segment_names_;
  std::map<std::string, std::vector<ProcessSample>> processes_;
  struct Counter {
    double last_raw = 0;
    double delta = 0;  // since the first reading, across restarts of the counter
    bool seen = false;
  };
  std::map<std::string, Counter> origin_fetches_;
  Reservoir behind_live_{100'000, 11};
  std::vector<std::vector<uint32_t>> behind_live_per_second_;
  std::vector<double> behind_live_max_per_second_;
  std::vector<double> viewer_behind_live_mean_;
  std::vector<double> viewer_behind_live_max_;
  uint64_t stalls_total_ = 0;
  uint64_t viewers_with_stalls_ = 0;
  uint64_t started_viewers_ = 0;
  double stalled_total_s_ = 0;
};

}  // namespace audience
