#include <doctest/doctest.h>

#include "common/metrics.h"

TEST_CASE("metrics: counters, gauges and histograms render in Prometheus text format") {
  common::MetricsRegistry registry;
  registry.counter("hits_total", "Hits", "tier=\"memory\"").inc(3);
  registry.counter("hits_total", "Hits", "tier=\"disk\"").inc();
  registry.counter("hits_total", "Hits", "tier=\"memory\"").inc();  // same series again
  registry.gauge("queue_length", "Queue").set(7);
  registry.gauge_fn("computed", "Computed", [] { return 1.5; });
  auto& h = registry.histogram("latency_seconds", "Latency", {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  std::string text = registry.render();
  CHECK(text.find("# TYPE hits_total counter\n") != std::string::npos);
  CHECK(text.find("hits_total{tier=\"memory\"} 4\n") != std::string::npos);
  CHECK(text.find("hits_total{tier=\"disk\"} 1\n") != std::string::npos);
  CHECK(text.find("queue_length 7\n") != std::string::npos);
  CHECK(text.find("computed 1.5\n") != std::string::npos);
  CHECK(text.find("latency_seconds_bucket{le=\"0.1\"} 1\n") != std::string::npos);
  CHECK(text.find("latency_seconds_bucket{le=\"1\"} 2\n") != std::string::npos);
  CHECK(text.find("latency_seconds_bucket{le=\"+Inf\"} 3\n") != std::string::npos);
  CHECK(text.find("latency_seconds_count 3\n") != std::string::npos);
  // HELP/TYPE appear once per metric name.
  CHECK(text.find("# TYPE hits_total") == text.rfind("# TYPE hits_total"));
}
