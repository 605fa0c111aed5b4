// The /metrics text of a real cache node and a real balancer, after traffic that
// registers series at run time (errors, origin failures, cache choices): every
// metric family is one contiguous block with one # HELP and one # TYPE line before
// its samples, histograms are well-formed, and `promtool check metrics` (Debian
// package prometheus, installed by scripts/setup.sh) accepts the text with no
// error and no lint problem. Without promtool that half is skipped with a message.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/venue_stack.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

// ---- exposition format layout check ----

struct Sample {
  std::string name;    // metric name as written (with _bucket/_sum/_count)
  std::string labels;  // label set without braces, "" when none
  std::string value;
};

// Parses `name{labels} value [timestamp]`; nullopt when malformed.
std::optional<Sample> parse_sample(const std::string& line) {
  Sample s;
  size_t end = line.find_first_of("{ ");
  if (end == std::string::npos || end == 0) return std::nullopt;
  s.name = line.substr(0, end);
  size_t rest = end;
  if (line[end] == '{') {
    // Label values are quoted and may contain '}' or escaped quotes.
    bool quoted = false;
    size_t i = end + 1;
    for (; i < line.size(); ++i) {
      if (quoted && line[i] == '\\') {
        ++i;
      } else if (line[i] == '"') {
        quoted = !quoted;
      } else if (!quoted && line[i] == '}') {
        break;
      }
    }
    if (i >= line.size()) return std::nullopt;
    s.labels = line.substr(end + 1, i - end - 1);
    rest = i + 1;
  }
  if (rest >= line.size() || line[rest] != ' ') return std::nullopt;
  s.value = line.substr(rest + 1);
  s.value = s.value.substr(0, s.value.find(' '));
  if (s.value.empty()) return std::nullopt;
  return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Removes `le="..."` from a histogram bucket's label set; its value goes to `le`.
std::string without_le(const std::string& labels, std::string* le) {
  size_t at = 0;
  while ((at = labels.find("le=\"", at)) != std::string::npos) {
    if (at == 0 || labels[at - 1] == ',') break;
    ++at;
  }
  if (at == std::string::npos) return labels;
  size_t close = labels.find('"', at + 4);
  if (close == std::string::npos) return labels;
  *le = labels.substr(at + 4, close - at - 4);
  std::string rest = labels.substr(0, at) + labels.substr(close + 1);
  if (!rest.empty() && rest.back() == ',') rest.pop_back();
  if (!rest.empty() && rest.front() == ',') rest.erase(0, 1);
  return rest;
}

struct HistogramSeries {
  std::vector<std::pair<double, double>> buckets;  // (le, cumulative count) in order
  std::optional<double> count, sum;
};

// Every problem with the family layout of `text`: a family must be one contiguous
// block of `# HELP`, `# TYPE` (each exactly once), then its samples; sample names
// must belong to a declared family; histograms must have increasing buckets ending
// with +Inf and a _count equal to the +Inf bucket. Also returns the families seen.
std::vector<std::string> layout_problems(const std::string& text,
                                         std::map<std::string, size_t>* samples_per_family) {
  std::vector<std::string> problems;
  std::map<std::string, std::string> types;
  std::set<std::string> helped;
  std::set<std::string> finished;  // families whose block has ended
  std::string current;             // family of the block being read
  // family -> label set -> series, for histograms.
  std::map<std::string, std::map<std::string, HistogramSeries>> histograms;

  auto enter = [&](const std::string& family, size_t line_no, const std::string& line) {
    if (family == current) return;
    if (!current.empty()) finished.insert(current);
    if (finished.count(family)) {
      problems.push_back("line " + std::to_string(line_no) + ": family " + family +
                         " continues after another family: " + line);
    }
    current = family;
  };

  std::istringstream in(text);
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    const std::string where = "line " + std::to_string(line_no) + ": ";
    if (line[0] == '#') {
      const bool help = line.rfind("# HELP ", 0) == 0;
      const bool type = line.rfind("# TYPE ", 0) == 0;
      if (!help && !type) continue;  // a plain comment
      std::string rest = line.substr(7);
      std::string name = rest.substr(0, rest.find(' '));
      enter(name, line_no, line);
      if (help) {
        if (!helped.insert(name).second) problems.push_back(where + "second HELP: " + line);
        if (types.count(name)) problems.push_back(where + "HELP after TYPE: " + line);
        if ((*samples_per_family)[name] > 0) problems.push_back(where + "HELP after samples");
      } else {
        size_t sp = rest.find(' ');
        std::string kind = sp == std::string::npos ? "" : rest.substr(sp + 1);
        if (!types.emplace(name, kind).second) problems.push_back(where + "second TYPE: " + line);
        if (!helped.count(name)) problems.push_back(where + "TYPE without HELP before it");
        if ((*samples_per_family)[name] > 0) problems.push_back(where + "TYPE after samples");
        if (kind != "counter" && kind != "gauge" && kind != "histogram") {
          problems.push_back(where + "unexpected type: " + line);
        }
      }
      continue;
    }
    auto sample = parse_sample(line);
    if (!sample) {
      problems.push_back(where + "malformed sample: " + line);
      continue;
    }
    std::string family = sample->name;
    std::string part;  // "", "_bucket", "_sum" or "_count" for histograms
    if (!types.count(family)) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        if (!ends_with(family, suffix)) continue;
        std::string base = family.substr(0, family.size() - std::string(suffix).size());
        if (types.count(base) && types[base] == "histogram") {
          family = base;
          part = suffix;
        }
        break;
      }
    }
    enter(family, line_no, line);
    ++(*samples_per_family)[family];
    if (!types.count(family)) {
      problems.push_back(where + "sample without a TYPE line before it: " + line);
      continue;
    }
    const double value = std::strtod(sample->value.c_str(), nullptr);
    if (types[family] == "histogram") {
      if (part.empty()) {
        problems.push_back(where + "histogram sample without _bucket/_sum/_count: " + line);
        continue;
      }
      std::string le;
      std::string key = part == "_bucket" ? without_le(sample->labels, &le) : sample->labels;
      HistogramSeries& h = histograms[family][key];
      if (part == "_bucket") {
        if (le.empty()) {
          problems.push_back(where + "bucket without le: " + line);
          continue;
        }
        double bound = le == "+Inf" ? HUGE_VAL : std::strtod(le.c_str(), nullptr);
        if (!h.buckets.empty() &&
            (bound <= h.buckets.back().first || value < h.buckets.back().second)) {
          problems.push_back(where + "bucket out of order or count decreasing: " + line);
        }
        if (h.count || h.sum) problems.push_back(where + "bucket after _sum/_count: " + line);
        h.buckets.emplace_back(bound, value);
      } else if (part == "_sum") {
        h.sum = value;
      } else {
        h.count = value;
      }
    }
  }
  for (const auto& [family, series] : histograms) {
    for (const auto& [labels, h] : series) {
      const std::string what = "histogram " + family + "{" + labels + "}: ";
      if (h.buckets.empty() || h.buckets.back().first != HUGE_VAL) {
        problems.push_back(what + "no +Inf bucket last");
      } else if (!h.count || *h.count != h.buckets.back().second) {
        problems.push_back(what + "_count missing or not equal to the +Inf bucket");
      }
      if (!h.sum) problems.push_back(what + "no _sum");
    }
  }
  return problems;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// ---- promtool ----

std::string find_in_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

struct PromtoolResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// `promtool check metrics` on `text` (written to dir/<name>.prom); nullopt when
// promtool is not installed.
std::optional<PromtoolResult> run_promtool(const TempDir& dir, const std::string& name,
                                           const std::string& text) {
  const std::string promtool = find_in_path("promtool");
  if (promtool.empty()) return std::nullopt;
  const std::string input = dir.file(name + ".prom");
  write_file(input, text);
  ChildProcess child;
  std::string error;
  // promtool reads stdin and ChildProcess has no stdin pipe, so a shell redirects the
  // file; stdout goes to the captured stderr file too, which is complete at exit.
  REQUIRE_MESSAGE(
      child.start({"/bin/sh", "-c", "exec \"$0\" check metrics < \"$1\" 1>&2", promtool, input}, {},
                  {}, &error),
      error);
  const auto code = child.wait_exit(deadline_in(30s));
  REQUIRE_MESSAGE(code.has_value(), "promtool did not finish in 30 s");
  return PromtoolResult{*code, child.stderr_text()};
}

// promtool check metrics exits 0 when clean, 1 on a parse error (a second HELP or
// TYPE line for a family, a malformed line) and 3 when it printed lint problems
// (a gauge named *_total, a counter without _total, no help text, camelCase,
// non-base units such as milliseconds). All of those fail here: the text must
// give exit 0 and print nothing.
void check_with_promtool(const TempDir& dir, const std::string& what, const std::string& text) {
  auto result = run_promtool(dir, what, text);
  if (!result) {
    MESSAGE("promtool not installed (Debian package prometheus, scripts/setup.sh): "
            << what << " promtool check skipped");
    return;
  }
  INFO(what << " metrics: promtool check metrics exited " << result->exit_code << ":\n"
            << result->output);
  CHECK(result->exit_code == 0);
  CHECK(result->output.find_first_not_of(" \n") == std::string::npos);
}

// ---- the stack ----

struct Stack : VenueStack {
  Stack() {
    write_file(dir.file("root/live/index.m3u8"), live_playlist(3, 4));
    for (int i = 3; i < 7; ++i) {
      write_file(dir.file("root/live/seg" + std::to_string(i) + ".ts"),
                 "chunk-" + std::to_string(i));
    }
    start(channels_json(
        {channel_json("demo", "/live/index.m3u8"), channel_json("gone", "/missing/index.m3u8")}));
  }
};

}  // namespace

bool mentions(const std::vector<std::string>& problems, const std::string& text) {
  return joined(problems).find(text) != std::string::npos;
}

TEST_CASE("the layout check itself flags split families, repeated HELP/TYPE and bad histograms") {
  std::map<std::string, size_t> families;
  auto split = layout_problems(
      "# HELP a_total A\n# TYPE a_total counter\na_total{k=\"1\"} 1\n"
      "# HELP b B\n# TYPE b gauge\nb 1\na_total{k=\"2\"} 1\n",
      &families);
  CHECK_MESSAGE(split.size() == 1, joined(split));
  CHECK(mentions(split, "line 7: family a_total continues after another family"));

  auto twice = layout_problems(
      "# HELP a_total A\n# TYPE a_total counter\na_total{k=\"1\"} 1\n"
      "# HELP a_total A\n# TYPE a_total counter\na_total{k=\"2\"} 1\n",
      &families);
  CHECK(mentions(twice, "line 4: second HELP"));
  CHECK(mentions(twice, "line 5: second TYPE"));

  auto untyped = layout_problems("x 1\n# HELP x X\n# TYPE x gauge\n", &families);
  CHECK(mentions(untyped, "line 1: sample without a TYPE line"));
  CHECK(mentions(untyped, "line 3: TYPE after samples"));

  auto histogram = layout_problems(
      "# HELP h H\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
      "h_bucket{le=\"+Inf\"} 1\nh_sum 3\nh_count 2\n"
      "# HELP i I\n# TYPE i histogram\ni_bucket{le=\"1\"} 2\ni_sum 3\ni_count 2\n",
      &families);
  CHECK(mentions(histogram, "line 4: bucket out of order or count decreasing"));
  CHECK(mentions(histogram, "histogram h{}: _count missing or not equal to the +Inf bucket"));
  CHECK(mentions(histogram, "histogram i{}: no +Inf bucket last"));

  families.clear();
  const std::string good =
      "# HELP h H\n# TYPE h histogram\nh_bucket{x=\"a\",le=\"1\"} 1\n"
      "h_bucket{x=\"a\",le=\"+Inf\"} 2\nh_sum{x=\"a\"} 3\nh_count{x=\"a\"} 2\n"
      "h_bucket{x=\"b\",le=\"1\"} 0\nh_bucket{x=\"b\",le=\"+Inf\"} 0\nh_sum{x=\"b\"} 0\n"
      "h_count{x=\"b\"} 0\n"
      "# HELP g G\n# TYPE g gauge\ng{path=\"}{\"} 1\n";
  CHECK(joined(layout_problems(good, &families)) == "");
  CHECK(families["h"] == 8);
  CHECK(families["g"] == 1);
}

TEST_CASE("promtool check metrics: exit codes and messages this test relies on") {
  TempDir dir;
  auto clean =
      run_promtool(dir, "clean", "# HELP up_total Up\n# TYPE up_total counter\nup_total 1\n");
  if (!clean) {
    MESSAGE("promtool not installed (Debian package prometheus, scripts/setup.sh): skipped");
    return;
  }
  CHECK(clean->exit_code == 0);
  CHECK(clean->output == "");
  auto gauge_total = run_promtool(
      dir, "gauge_total", "# HELP viewers_total V\n# TYPE viewers_total gauge\nviewers_total 2\n");
  REQUIRE(gauge_total.has_value());
  CHECK(gauge_total->exit_code != 0);
  CHECK(gauge_total->output.find(
            "viewers_total non-counter metrics should not have \"_total\" suffix") !=
        std::string::npos);
  auto repeated = run_promtool(dir, "repeated",
                               "# HELP a_total A\n# TYPE a_total counter\na_total{k=\"1\"} 1\n"
                               "# HELP b_total B\n# TYPE b_total counter\nb_total 1\n"
                               "# HELP a_total A\n# TYPE a_total counter\na_total{k=\"2\"} 1\n");
  REQUIRE(repeated.has_value());
  CHECK(repeated->exit_code != 0);
  CHECK(repeated->output.find("second HELP line for metric name \"a_total\"") != std::string::npos);
}

TEST_CASE(
    "/metrics of a cache node and a balancer after traffic and errors: one block per family, "
    "promtool-clean") {
  Stack s;

  // Balancer: playlists through the cache and from origin, then errors.
  auto via_cache = s.balancer->get("/hls/demo/live/index.m3u8?viewer=v1&cache=venue-a");
  REQUIRE_MESSAGE(via_cache.status == 200, via_cache.body);
  auto chunks = uri_lines(via_cache.body);
  REQUIRE(chunks.size() == 4);
  CHECK(s.balancer->get("/hls/demo/live/index.m3u8?viewer=v2").status == 200);
  auto gone = s.balancer->get("/hls/gone/missing/index.m3u8?viewer=v3");  // origin 404
  CHECK(gone.status == 404);
  auto unknown = s.balancer->get("/hls/nope/live/index.m3u8?viewer=v4");
  CHECK(unknown.status == 404);
  CHECK(is_json_error(unknown, "unknown_channel"));
  CHECK(s.balancer->get("/key/demo/other/secret.key?viewer=v5").status == 404);
  CHECK(s.balancer->get("/no/such/endpoint").status >= 400);

  // Cache node: a miss and a hit through the balancer's signed links, then errors.
  CHECK(http_get(chunks[0]).body == "chunk-3");
  CHECK(http_get(chunks[0]).body == "chunk-3");
  std::string tampered = chunks[1];
  tampered.replace(tampered.find("seg4.ts"), 7, "seg5.ts");
  auto bad_signature = http_get(tampered);
  CHECK(bad_signature.status == 403);
  CHECK(is_json_error(bad_signature, "signature_invalid"));
  CHECK(http_get(s.node->url("/o/demo/live/seg4.ts")).status == 403);    // no signature
  auto missing = http_get(s.node->signed_url("/o/demo/live/seg99.ts"));  // origin 404
  CHECK(missing.status == 404);
  CHECK(http_get(s.node->url("/nothing/here")).status == 404);

  const std::string balancer_text = s.balancer->metrics();
  const std::string cache_text = http_get(s.node->url("/metrics")).body;
  REQUIRE(!balancer_text.empty());
  REQUIRE(!cache_text.empty());

  {  // (a) contiguous families, HELP/TYPE once each and first, well-formed histograms
    std::map<std::string, size_t> balancer_families, cache_families;
    auto problems = layout_problems(balancer_text, &balancer_families);
    CHECK_MESSAGE(problems.empty(), "balancer /metrics:\n" << joined(problems) << balancer_text);
    problems = layout_problems(cache_text, &cache_families);
    CHECK_MESSAGE(problems.empty(), "cache node /metrics:\n" << joined(problems) << cache_text);
    // The families the issue saw split, with series registered at different times.
    CHECK(balancer_families["balancer_origin_fetches_total"] >= 2);
    CHECK(balancer_families["balancer_viewers"] >= 2);
    CHECK(balancer_families["balancer_traffic_declared_mbps_by_channel"] >= 2);
    CHECK(balancer_families.count("balancer_active_viewers") == 1);
    CHECK(balancer_families.count("balancer_viewers_total") == 0);
    CHECK(cache_families["cache_requests_total"] >= 2);
  }

  {  // (b) promtool check metrics
    check_with_promtool(s.dir, "balancer", balancer_text);
    check_with_promtool(s.dir, "cache_node", cache_text);
  }
}
