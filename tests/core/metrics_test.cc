#include <doctest/doctest.h>

#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/metrics.h"
#include "support/text_lines.h"

TEST_CASE("metrics: counters, gauges and histograms render in Prometheus text format") {
  core::MetricsRegistry registry;
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

namespace {

std::string sample_name(const std::string& line) {
  return line.substr(0, line.find_first_of("{ "));
}

// The family a sample belongs to, given the `# TYPE` lines seen: its own name, or
// for histograms the name without _bucket/_sum/_count.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  if (types.count(name)) return name;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::string s = suffix;
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      std::string base = name.substr(0, name.size() - s.size());
      auto it = types.find(base);
      if (it != types.end() && it->second == "histogram") return base;
    }
  }
  return name;
}

// Problems with family layout: each family one block of `# HELP`, `# TYPE`, samples.
std::vector<std::string> family_problems(const std::string& text) {
  std::vector<std::string> problems;
  std::map<std::string, std::string> types;
  std::set<std::string> helped, closed;
  std::string current;
  for (const auto& line : balancer::test::split_lines(text)) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      std::string rest = line.substr(7);
      std::string name = rest.substr(0, rest.find(' '));
      bool help = line[2] == 'H';
      if (name != current) {
        if (!current.empty()) closed.insert(current);
        if (closed.count(name)) problems.push_back("family reopened: " + line);
        current = name;
      }
      if (help && !helped.insert(name).second) problems.push_back("second HELP: " + line);
      if (!help && !types.emplace(name, rest.substr(rest.find(' ') + 1)).second) {
        problems.push_back("second TYPE: " + line);
      }
      continue;
    }
    std::string family = family_of(sample_name(line), types);
    if (!types.count(family)) problems.push_back("sample before its TYPE: " + line);
    if (family != current) problems.push_back("sample outside its family block: " + line);
  }
  return problems;
}

std::string joined(const std::vector<std::string>& problems) {
  std::string out;
  for (const auto& p : problems) out += p + "\n";
  return out;
}

// `text` lays every family out as one block of `# HELP`, `# TYPE` and its samples.
void check_family_layout(const std::string& text) {
  const auto problems = family_problems(text);
  CHECK_MESSAGE(problems.empty(), joined(problems));
}

}  // namespace

TEST_CASE("metrics: a counter family registers one series per label value, after fixed labels") {
  core::MetricsRegistry r;
  constexpr core::CounterFamily kOutcomes{"x_requests_total", "Requests by outcome", "result"};
  constexpr core::CounterFamily kFetches{"x_fetches_total", "Fetches", "trigger",
                                         "resource=\"key\""};
  core::Counter& hits = kOutcomes.in(r, "hit");
  hits.inc(2);
  kOutcomes.in(r, "miss").inc();
  kFetches.in(r, "refresh").inc(5);
  CHECK(&kOutcomes.in(r, "hit") == &hits);  // the same series again
  CHECK(&r.counter("x_requests_total", "Requests by outcome", "result=\"hit\"") == &hits);
  const std::string text = r.render();
  CHECK(text.find("x_requests_total{result=\"hit\"} 2\n") != std::string::npos);
  CHECK(text.find("x_requests_total{result=\"miss\"} 1\n") != std::string::npos);
  CHECK(text.find("x_fetches_total{resource=\"key\",trigger=\"refresh\"} 5\n") !=
        std::string::npos);
}

TEST_CASE("metrics: interleaved registration still renders each family contiguously") {
  core::MetricsRegistry registry;
  registry.counter("fetches_total", "Fetches", "trigger=\"request\"").inc(2);
  registry.gauge("queue_length", "Queue").set(1);
  registry.gauge_fn(
      "viewers", "Viewers", [] { return 3; }, "channel=\"a\"");
  registry.counter("fetches_total", "Fetches", "trigger=\"refresh\"").inc();
  registry.gauge("viewers", "Viewers", "channel=\"b\"").set(4);  // gauge + gauge_fn share a family
  registry.counter("other_total", "Other");
  registry.gauge_fn(
      "viewers", "Viewers", [] { return 5; }, "channel=\"c\"");
  registry.counter("fetches_total", "Fetches", "trigger=\"request\"").inc();  // existing series

  const std::string text = registry.render();
  CHECK(text ==
        "# HELP fetches_total Fetches\n"
        "# TYPE fetches_total counter\n"
        "fetches_total{trigger=\"request\"} 3\n"
        "fetches_total{trigger=\"refresh\"} 1\n"
        "# HELP queue_length Queue\n"
        "# TYPE queue_length gauge\n"
        "queue_length 1\n"
        "# HELP viewers Viewers\n"
        "# TYPE viewers gauge\n"
        "viewers{channel=\"a\"} 3\n"
        "viewers{channel=\"b\"} 4\n"
        "viewers{channel=\"c\"} 5\n"
        "# HELP other_total Other\n"
        "# TYPE other_total counter\n"
        "other_total 0\n");
  check_family_layout(text);
}

TEST_CASE("metrics: HELP and TYPE appear once per family, before its samples") {
  core::MetricsRegistry registry;
  for (int i = 0; i < 5; ++i) {
    registry.counter("a_total", "A", "n=\"" + std::to_string(i) + "\"").inc();
    registry.gauge("b", "B", "n=\"" + std::to_string(i) + "\"").set(i);
    registry.histogram("c_seconds", "C", {0.1}, "n=\"" + std::to_string(i) + "\"").observe(0.01);
  }
  const std::string text = registry.render();
  for (const char* name : {"a_total", "b", "c_seconds"}) {
    INFO(name);
    const std::string help = std::string("# HELP ") + name + " ";
    const std::string type = std::string("# TYPE ") + name + " ";
    CHECK(text.find(help) != std::string::npos);
    CHECK(text.find(help) == text.rfind(help));
    CHECK(text.find(type) == text.rfind(type));
    CHECK(text.find(help) < text.find(type));
    CHECK(text.find(type) < text.find(std::string("\n") + name));
  }
  check_family_layout(text);
}

TEST_CASE("metrics: labelled histograms registered between other families stay well-formed") {
  core::MetricsRegistry registry;
  registry.histogram("fetch_seconds", "Fetch time", {0.1, 1}, "origin=\"a\"").observe(0.05);
  registry.counter("errors_total", "Errors").inc();
  auto& b = registry.histogram("fetch_seconds", "Fetch time", {0.1, 1}, "origin=\"b\"");
  b.observe(0.5);
  b.observe(2);

  const std::string text = registry.render();
  CHECK(text ==
        "# HELP fetch_seconds Fetch time\n"
        "# TYPE fetch_seconds histogram\n"
        "fetch_seconds_bucket{origin=\"a\",le=\"0.1\"} 1\n"
        "fetch_seconds_bucket{origin=\"a\",le=\"1\"} 1\n"
        "fetch_seconds_bucket{origin=\"a\",le=\"+Inf\"} 1\n"
        "fetch_seconds_sum{origin=\"a\"} 0.05\n"
        "fetch_seconds_count{origin=\"a\"} 1\n"
        "fetch_seconds_bucket{origin=\"b\",le=\"0.1\"} 0\n"
        "fetch_seconds_bucket{origin=\"b\",le=\"1\"} 1\n"
        "fetch_seconds_bucket{origin=\"b\",le=\"+Inf\"} 2\n"
        "fetch_seconds_sum{origin=\"b\"} 2.5\n"
        "fetch_seconds_count{origin=\"b\"} 2\n"
        "# HELP errors_total Errors\n"
        "# TYPE errors_total counter\n"
        "errors_total 1\n");
  check_family_layout(text);
}

TEST_CASE("metrics: a family name registered with two types is refused") {
  core::MetricsRegistry registry;
  registry.counter("things_total", "Things", "k=\"a\"");
  registry.gauge("level", "Level", "k=\"a\"");
  registry.histogram("took_seconds", "Took", {1});
  CHECK_THROWS_AS(registry.gauge("things_total", "Things", "k=\"b\""), std::logic_error);
  CHECK_THROWS_AS(registry.gauge_fn("things_total", "Things", [] { return 1.0; }),
                  std::logic_error);
  CHECK_THROWS_AS(registry.histogram("things_total", "Things", {1}), std::logic_error);
  CHECK_THROWS_AS(registry.counter("level", "Level", "k=\"a\""), std::logic_error);
  CHECK_THROWS_AS(registry.counter("took_seconds", "Took"), std::logic_error);
  CHECK_THROWS_AS(registry.gauge("took_seconds", "Took"), std::logic_error);
  // A gauge and a computed gauge may share a family, but not one series.
  CHECK_NOTHROW(registry.gauge_fn(
      "level", "Level", [] { return 2.0; }, "k=\"b\""));
  CHECK_THROWS_AS(registry.gauge_fn(
                      "level", "Level", [] { return 3.0; }, "k=\"a\""),
                  std::logic_error);
  CHECK_THROWS_AS(registry.gauge("level", "Level", "k=\"b\""), std::logic_error);
  // A refused registration leaves the output unchanged and valid.
  const std::string text = registry.render();
  CHECK(text.find("# TYPE things_total counter\n") != std::string::npos);
  CHECK(text.find("# TYPE level gauge\n") != std::string::npos);
  CHECK(text.find("level{k=\"b\"} 2\n") != std::string::npos);
  CHECK(text.find("things_total{k=\"b\"}") == std::string::npos);
  check_family_layout(text);
}

TEST_CASE("metrics: registering a computed gauge again replaces its function; HELP is escaped") {
  core::MetricsRegistry registry;
  registry.gauge_fn("nodes", "Nodes\\known\nnow", [] { return 1.0; });
  registry.gauge_fn("nodes", "ignored", [] { return 2.0; });
  CHECK(registry.render() ==
        "# HELP nodes Nodes\\\\known\\nnow\n"
        "# TYPE nodes gauge\n"
        "nodes 2\n");
}

TEST_CASE(
    "metrics: a computed counter renders as a counter, shares a family with stored ones, not a "
    "series") {
  core::MetricsRegistry registry;
  double lines = 7;
  registry.counter("lines_total", "Lines", "kind=\"slow\"").inc(2);
  registry.counter_fn(
      "lines_total", "Lines", [&] { return lines; }, "kind=\"fast\"");
  CHECK_THROWS_AS(registry.counter("lines_total", "Lines", "kind=\"fast\""), std::logic_error);
  CHECK_THROWS_AS(registry.gauge_fn("lines_total", "Lines", [] { return 1.0; }), std::logic_error);
  lines = 9;
  const std::string text = registry.render();
  CHECK(text.find("# TYPE lines_total counter\nlines_total{kind=\"slow\"} "
                  "2\nlines_total{kind=\"fast\"} 9\n") != std::string::npos);
}

TEST_CASE("metrics: a histogram observed from more threads than it has shards adds up exactly") {
  core::Histogram h({0.001, 0.01, 0.1});
  constexpr int kThreads = 6;  // more than the shards: some threads share one
  constexpr int kEach = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kEach; ++i) h.observe(t % 2 == 0 ? 0.005 : 1.0);
    });
  }
  for (auto& t : threads) t.join();
  const std::vector<uint64_t> counts = h.counts();
  REQUIRE(counts.size() == 4);
  CHECK(counts[0] == 0);
  CHECK(counts[1] == 3u * kEach);  // 0.005 <= 0.01
  CHECK(counts[2] == 0);
  CHECK(counts[3] == 3u * kEach);  // +Inf
  CHECK(h.count() == 6u * kEach);
  CHECK(h.sum() == doctest::Approx(3.0 * kEach * 0.005 + 3.0 * kEach * 1.0));
}
