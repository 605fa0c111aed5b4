// Prometheus text-format metrics. The registry owns every metric; metrics are
// created once at start and updated from the loop thread (values are atomics, so
// a worker thread may update them too). Rendering is O(number of series).
//
// Families: every series belongs to the family of its name. render() writes each
// family contiguously, as the exposition format requires: one `# HELP` and one
// `# TYPE` line, then all of the family's series in registration order; families
// appear in the order of their first registration. The help text of the first
// registration is kept.
//
// A family has one type. Registering a name again with another type (a counter
// where a gauge or histogram of that name exists, and so on) is a programming
// error: it throws std::logic_error, in every build type, so the conflict shows
// up the first time the registering code runs. gauge() and gauge_fn() series are
// both of type gauge and may share a family (with different label sets).
//
// Registering an existing series (same name and labels, same kind) again returns
// the existing metric; a second gauge_fn() for the same series replaces its
// function. A gauge() and a gauge_fn() with the same name and labels would be
// two samples of one series: that throws std::logic_error too.
//
// Not checked: names that collide with a histogram's derived series (a counter
// `x_count` next to a histogram `x`), and label syntax; keep names distinct.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace core {

class Counter {
 public:
  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double v) {
    double cur = value_.load(std::memory_order_relaxed);
    while (!value_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
    }
  }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Cumulative histogram with fixed upper bounds (seconds for latencies). Several loops observe
// the same histogram on every request: each thread adds into its own cache-line-aligned shard
// (threads beyond kShards share), and reads sum the shards. One shared set of atomics made
// every observation a cache-line transfer between the cores (2 % of the balancer's CPU at
// two loops, perf).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (non-cumulative) counts; last is +Inf.
  std::vector<uint64_t> counts() const;
  double sum() const;
  uint64_t count() const;

 private:
  static constexpr size_t kShards = 4;
  struct alignas(64) Line {
    std::atomic<uint64_t> slot[8]{};
  };
  struct alignas(64) Totals {
    std::atomic<uint64_t> count{0};
    std::atomic<double> sum{0};
  };
  std::atomic<uint64_t>& bucket(size_t shard, size_t i) const {
    return lines_[shard * lines_per_shard_ + i / 8].slot[i % 8];
  }

  std::vector<double> bounds_;
  size_t lines_per_shard_;
  std::unique_ptr<Line[]> lines_;  // kShards * lines_per_shard_: bounds + 1 buckets each
  std::unique_ptr<Totals[]> totals_;
};

// Latency buckets from 0.5 ms to 10 s.
std::vector<double> latency_buckets();

class MetricsRegistry;

// The counters of one family that differ in one label's value, named once:
//   constexpr CounterFamily kRequests{"cache_requests_total", "Chunk requests by outcome",
//                                     "result"};
//   Counter& hits = kRequests.in(registry, "hit");  // cache_requests_total{result="hit"}
// `fixed` (labels without braces, e.g. `resource="playlist"`) precedes the label in every series.
struct CounterFamily {
  std::string_view name, help, label, fixed = {};
  Counter& in(MetricsRegistry& registry, std::string_view value) const;
  // One counter per label value in `values` (an enum's names, say), indexed like them.
  template <size_t N>
  std::array<Counter*, N> each(MetricsRegistry& registry, const char* const (&values)[N]) const {
    std::array<Counter*, N> counters{};
    for (size_t i = 0; i < N; ++i) counters[i] = &in(registry, values[i]);
    return counters;
  }
};

class MetricsRegistry {
 public:
  // `labels` is the Prometheus label set without braces, e.g. `kind="timeout"`.
  // Returned references stay valid for the registry's lifetime. Each call throws
  // std::logic_error when `name` is already registered with another type (see above).
  Counter& counter(const std::string& name, const std::string& help,
                   const std::string& labels = "");
  Gauge& gauge(const std::string& name, const std::string& help, const std::string& labels = "");
  Histogram& histogram(const std::string& name, const std::string& help,
                       std::vector<double> bounds = latency_buckets(),
                       const std::string& labels = "");
  // A gauge computed at render time (loop thread), under the registry's lock: `fn`
  // must not call back into the registry.
  void gauge_fn(const std::string& name, const std::string& help, std::function<double()> fn,
                const std::string& labels = "");
  // A counter read at render time, likewise: for a count kept outside the registry
  // (one for the whole process, say). `fn` must never decrease.
  void counter_fn(const std::string& name, const std::string& help, std::function<double()> fn,
                  const std::string& labels = "");

  // The whole registry in Prometheus text exposition format 0.0.4, one contiguous
  // block per family.
  std::string render() const;

 private:
  enum class Type { counter, gauge, histogram };                        // a family's `# TYPE`
  enum class Kind { counter, gauge, histogram, gauge_fn, counter_fn };  // how a series is stored
  struct Series {
    std::string labels;
    Kind kind;
    Counter* counter = nullptr;
    Gauge* gauge = nullptr;
    Histogram* histogram = nullptr;
    std::function<double()> fn;
  };
  struct Family {
    std::string name, help;  // help already escaped for the exposition format
    Type type;
    std::vector<Series> series;                         // registration order
    std::unordered_map<std::string, size_t> by_labels;  // labels -> index in series
  };
  // The family `name`, created (last in order) when new; throws std::logic_error
  // when it exists with another type. Caller holds mutex_.
  Family& family(const std::string& name, const std::string& help, Type type);
  // The series with `labels` in `f`, or nullptr; throws std::logic_error when it
  // exists with another kind.
  static Series* find(Family& f, const std::string& labels, Kind kind);
  static Series& add(Family& f, Series series);
  // counter, gauge and histogram: the stored series `labels` of family `name`, its value
  // made by `make` (in one of the deques below) when the series is new.
  template <typename Value, typename Make>
  Value& stored_series(const std::string& name, const std::string& help, const std::string& labels,
                       Type type, Kind kind, Value* Series::*slot, Make make);
  // gauge_fn and counter_fn: a series read from `fn` at render time (a second call replaces it).
  void add_computed(const std::string& name, const std::string& help, std::function<double()> fn,
                    const std::string& labels, Type type, Kind kind);

  mutable std::mutex mutex_;      // guards families_ layout (creation vs render)
  std::vector<Family> families_;  // first-registration order
  std::unordered_map<std::string, size_t> family_index_;  // name -> index in families_
  std::deque<Counter> counters_;
  std::deque<Gauge> gauges_;
  std::deque<Histogram> histograms_;
};

}  // namespace core
