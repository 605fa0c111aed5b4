#include "core/metrics.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <utility>

namespace core {

namespace {
// The shard of the calling thread: threads take shards in turn as they first observe.
size_t histogram_shard() {
  static std::atomic<size_t> next_thread{0};
  thread_local const size_t thread_number = next_thread.fetch_add(1, std::memory_order_relaxed);
  return thread_number;
}
}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      lines_per_shard_((bounds_.size() + 1 + 7) / 8),
      lines_(new Line[kShards * lines_per_shard_]),
      totals_(new Totals[kShards]) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  const size_t shard = histogram_shard() % kShards;
  bucket(shard, i).fetch_add(1, std::memory_order_relaxed);
  Totals& t = totals_[shard];
  t.count.fetch_add(1, std::memory_order_relaxed);
  double cur = t.sum.load(std::memory_order_relaxed);
  while (!t.sum.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

std::vector<uint64_t> Histogram::counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t s = 0; s < kShards; ++s) {
    for (size_t i = 0; i <= bounds_.size(); ++i)
      out[i] += bucket(s, i).load(std::memory_order_relaxed);
  }
  return out;
}

double Histogram::sum() const {
  double total = 0;
  for (size_t s = 0; s < kShards; ++s) total += totals_[s].sum.load(std::memory_order_relaxed);
  return total;
}

uint64_t Histogram::count() const {
  uint64_t total = 0;
  for (size_t s = 0; s < kShards; ++s) total += totals_[s].count.load(std::memory_order_relaxed);
  return total;
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

Counter& CounterFamily::in(MetricsRegistry& registry, std::string_view value) const {
  std::string labels(fixed);
  if (!labels.empty()) labels += ',';
  labels.append(label).append("=\"").append(value).append("\"");
  return registry.counter(std::string(name), std::string(help), labels);
}

namespace {
const char* type_name(int type) {
  static const char* const names[] = {"counter", "gauge", "histogram"};
  return names[type];
}

// HELP text escaping of the exposition format: backslash and line feed.
std::string escape_help(const std::string& help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}
}  // namespace

MetricsRegistry::Family& MetricsRegistry::family(const std::string& name, const std::string& help,
                                                 Type type) {
  auto [it, inserted] = family_index_.try_emplace(name, families_.size());
  if (inserted) {
    families_.push_back(Family{name, escape_help(help), type, {}, {}});
    return families_.back();
  }
  Family& f = families_[it->second];
  if (f.type != type) {
    throw std::logic_error("metric family " + name + " registered as " +
                           type_name(static_cast<int>(type)) + " but already exists as " +
                           type_name(static_cast<int>(f.type)));
  }
  return f;
}

MetricsRegistry::Series* MetricsRegistry::find(Family& f, const std::string& labels, Kind kind) {
  auto it = f.by_labels.find(labels);
  if (it == f.by_labels.end()) return nullptr;
  Series& s = f.series[it->second];
  if (s.kind != kind) {
    // Only a stored and a computed series of one type can get here (other kinds
    // differ in family type).
    throw std::logic_error("metric series " + f.name + "{" + labels +
                           "} registered both as a stored " + type_name(static_cast<int>(f.type)) +
                           " and as a computed one");
  }
  return &s;
}

MetricsRegistry::Series& MetricsRegistry::add(Family& f, Series series) {
  f.by_labels.emplace(series.labels, f.series.size());
  f.series.push_back(std::move(series));
  return f.series.back();
}

template <typename Value, typename Make>
Value& MetricsRegistry::stored_series(const std::string& name, const std::string& help,
                                      const std::string& labels, Type type, Kind kind,
                                      Value* Series::*slot, Make make) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, help, type);
  if (Series* s = find(f, labels, kind)) return *(s->*slot);
  Value& value = make();
  Series series{labels, kind, nullptr, nullptr, nullptr, {}};
  series.*slot = &value;
  add(f, std::move(series));
  return value;
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                  const std::string& labels) {
  return stored_series(name, help, labels, Type::counter, Kind::counter, &Series::counter,
                       [this]() -> Counter& { return counters_.emplace_back(); });
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                              const std::string& labels) {
  return stored_series(name, help, labels, Type::gauge, Kind::gauge, &Series::gauge,
                       [this]() -> Gauge& { return gauges_.emplace_back(); });
}

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                      std::vector<double> bounds, const std::string& labels) {
  return stored_series(name, help, labels, Type::histogram, Kind::histogram, &Series::histogram,
                       [&]() -> Histogram& { return histograms_.emplace_back(std::move(bounds)); });
}

void MetricsRegistry::gauge_fn(const std::string& name, const std::string& help,
                               std::function<double()> fn, const std::string& labels) {
  add_computed(name, help, std::move(fn), labels, Type::gauge, Kind::gauge_fn);
}

void MetricsRegistry::counter_fn(const std::string& name, const std::string& help,
                                 std::function<double()> fn, const std::string& labels) {
  add_computed(name, help, std::move(fn), labels, Type::counter, Kind::counter_fn);
}

void MetricsRegistry::add_computed(const std::string& name, const std::string& help,
                                   std::function<double()> fn, const std::string& labels, Type type,
                                   Kind kind) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, help, type);
  if (Series* s = find(f, labels, kind)) {
    s->fn = std::move(fn);
    return;
  }
  add(f, Series{labels, kind, nullptr, nullptr, nullptr, std::move(fn)});
}

namespace {
void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    snprintf(buf, sizeof buf, "%.6g", v);
  }
  out += buf;
}

// `name{labels,extra} ` (no braces when both are empty).
void append_series(std::string& out, const std::string& name, const char* suffix,
                   const std::string& labels, const std::string& extra) {
  out += name;
  out += suffix;
  if (!labels.empty() || !extra.empty()) {
    out += '{';
    out += labels;
    if (!labels.empty() && !extra.empty()) out += ',';
    out += extra;
    out += '}';
  }
  out += ' ';
}
}  // namespace

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  size_t lines = 0;
  for (const auto& f : families_) lines += 2 + f.series.size();
  out.reserve(lines * 96);
  for (const auto& f : families_) {
    out += "# HELP " + f.name + " " + f.help + "\n";
    out += "# TYPE " + f.name + " " + type_name(static_cast<int>(f.type)) + "\n";
    for (const auto& s : f.series) {
      switch (s.kind) {
        case Kind::counter:
          append_series(out, f.name, "", s.labels, "");
          append_number(out, static_cast<double>(s.counter->value()));
          out += '\n';
          break;
        case Kind::gauge:
          append_series(out, f.name, "", s.labels, "");
          append_number(out, s.gauge->value());
          out += '\n';
          break;
        case Kind::gauge_fn:
        case Kind::counter_fn:
          append_series(out, f.name, "", s.labels, "");
          append_number(out, s.fn());
          out += '\n';
          break;
        case Kind::histogram: {
          const auto counts = s.histogram->counts();
          const auto& bounds = s.histogram->bounds();
          uint64_t cumulative = 0;
          std::string le;
          for (size_t i = 0; i <= bounds.size(); ++i) {
            cumulative += counts[i];
            le = "le=\"";
            if (i < bounds.size()) {
              append_number(le, bounds[i]);
            } else {
              le += "+Inf";
            }
            le += '"';
            append_series(out, f.name, "_bucket", s.labels, le);
            out += std::to_string(cumulative);
            out += '\n';
          }
          append_series(out, f.name, "_sum", s.labels, "");
          append_number(out, s.histogram->sum());
          out += '\n';
          // The +Inf bucket, not count(): both read while observe() may run, and
          // _count must equal the +Inf bucket.
          append_series(out, f.name, "_count", s.labels, "");
          out += std::to_string(cumulative);
          out += '\n';
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace core
