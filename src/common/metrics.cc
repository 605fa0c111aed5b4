#include "common/metrics.h"

#include <cmath>
#include <cstdio>

namespace common {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  double cur = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

std::vector<uint64_t> Histogram::counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

MetricsRegistry::Series* MetricsRegistry::find(const std::string& name, const std::string& labels) {
  for (auto& s : series_) {
    if (s.name == name && s.labels == labels) return &s;
  }
  return nullptr;
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                  const std::string& labels) {
  std::lock_guard lock(mutex_);
  if (auto* s = find(name, labels); s != nullptr && s->counter != nullptr) return *s->counter;
  counters_.emplace_back();
  series_.push_back(Series{name, help, labels, Kind::counter, &counters_.back(), nullptr, nullptr, {}});
  return counters_.back();
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help, const std::string& labels) {
  std::lock_guard lock(mutex_);
  if (auto* s = find(name, labels); s != nullptr && s->gauge != nullptr) return *s->gauge;
  gauges_.emplace_back();
  series_.push_back(Series{name, help, labels, Kind::gauge, nullptr, &gauges_.back(), nullptr, {}});
  return gauges_.back();
}

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                      std::vector<double> bounds, const std::string& labels) {
  std::lock_guard lock(mutex_);
  if (auto* s = find(name, labels); s != nullptr && s->histogram != nullptr) return *s->histogram;
  histograms_.emplace_back(std::move(bounds));
  series_.push_back(Series{name, help, labels, Kind::histogram, nullptr, nullptr, &histograms_.back(), {}});
  return histograms_.back();
}

void MetricsRegistry::gauge_fn(const std::string& name, const std::string& help, std::function<double()> fn,
                               const std::string& labels) {
  std::lock_guard lock(mutex_);
  series_.push_back(Series{name, help, labels, Kind::gauge_fn, nullptr, nullptr, nullptr, std::move(fn)});
}

namespace {
void append_number(std::string& out, double v) {
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

std::string with_labels(const std::string& labels, const std::string& extra) {
  if (labels.empty() && extra.empty()) return "";
  if (labels.empty()) return "{" + extra + "}";
  if (extra.empty()) return "{" + labels + "}";
  return "{" + labels + "," + extra + "}";
}
}  // namespace

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  out.reserve(series_.size() * 96);
  std::vector<std::string> announced;
  for (const auto& s : series_) {
    bool seen = false;
    for (const auto& a : announced) seen = seen || a == s.name;
    if (!seen) {
      announced.push_back(s.name);
      const char* type = s.kind == Kind::counter ? "counter" : s.kind == Kind::histogram ? "histogram" : "gauge";
      out += "# HELP " + s.name + " " + s.help + "\n# TYPE " + s.name + " " + type + "\n";
    }
    switch (s.kind) {
      case Kind::counter:
        out += s.name + with_labels(s.labels, "") + " ";
        append_number(out, static_cast<double>(s.counter->value()));
        out += "\n";
        break;
      case Kind::gauge:
        out += s.name + with_labels(s.labels, "") + " ";
        append_number(out, s.gauge->value());
        out += "\n";
        break;
      case Kind::gauge_fn:
        out += s.name + with_labels(s.labels, "") + " ";
        append_number(out, s.fn());
        out += "\n";
        break;
      case Kind::histogram: {
        auto counts = s.histogram->counts();
        uint64_t cumulative = 0;
        const auto& bounds = s.histogram->bounds();
        for (size_t i = 0; i <= bounds.size(); ++i) {
          cumulative += counts[i];
          std::string le = "le=\"";
          if (i < bounds.size()) {
            append_number(le, bounds[i]);
          } else {
            le += "+Inf";
          }
          le += "\"";
          out += s.name + "_bucket" + with_labels(s.labels, le) + " " + std::to_string(cumulative) + "\n";
        }
        out += s.name + "_sum" + with_labels(s.labels, "") + " ";
        append_number(out, s.histogram->sum());
        out += "\n" + s.name + "_count" + with_labels(s.labels, "") + " " +
               std::to_string(s.histogram->count()) + "\n";
        break;
      }
    }
  }
  return out;
}

}  // namespace common
