// The recorder's HTML report: a summary, the viewers' and the machine's charts (inline SVG)
// and the tables, from what the run recorded; the JSON report is in recorder.cc.
#include <algorithm>
#include <string>
#include <string_view>

#include "audience/recorder.h"
#include "audience/report_text.h"

namespace audience {
namespace {

std::string html_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// One SVG line chart: series of (x, y) points with a name each, axes with min/max labels.
struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
};

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#17becf"};

std::string svg_chart(const std::string& title, const std::string& x_label,
                      const std::string& y_label, const std::vector<Series>& series) {
  double x_max = 1e-9, y_max = 1e-9;
  for (const auto& s : series) {
    for (const auto& [x, y] : s.points) {
      x_max = std::max(x_max, x);
      y_max = std::max(y_max, y);
    }
  }
  const double w = 640, h = 220, left = 60, bottom = 30, top = 10, right = 150;
  std::string out = "<figure><figcaption>" + html_escape(title) +
                    "</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                    fixed(w + right, 0) + "\" height=\"" + fixed(h + bottom + top, 0) +
                    "\" font-family=\"sans-serif\" font-size=\"11\">";
  out += "<rect x=\"" + fixed(left, 0) + "\" y=\"" + fixed(top, 0) + "\" width=\"" +
         fixed(w - left, 0) + "\" height=\"" + fixed(h - top, 0) +
         "\" fill=\"none\" stroke=\"#999\"/>";
  out += "<text x=\"" + fixed(left - 4, 0) + "\" y=\"" + fixed(top + 10, 0) +
         "\" text-anchor=\"end\">" + number(y_max) + "</text>";
  out += "<text x=\"" + fixed(left - 4, 0) + "\" y=\"" + fixed(h, 0) +
         "\" text-anchor=\"end\">0</text>";
  out += "<text x=\"" + fixed(w, 0) + "\" y=\"" + fixed(h + 15, 0) + "\" text-anchor=\"end\">" +
         number(x_max) + "</text>";
  out += "<text x=\"" + fixed((left + w) / 2, 0) + "\" y=\"" + fixed(h + 27, 0) +
         "\" text-anchor=\"middle\">" + x_label + "</text>";
  out += "<text x=\"12\" y=\"" + fixed((top + h) / 2, 0) + "\" transform=\"rotate(-90 12 " +
         fixed((top + h) / 2, 0) + ")\" text-anchor=\"middle\">" + y_label + "</text>";
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    const char* color = kColors[i % std::size(kColors)];
    out += "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"" + std::string(color) +
           "\" points=\"";
    for (const auto& [x, y] : s.points) {
      out +=
          fixed(left + (w - left) * x / x_max, 1) + "," + fixed(h - (h - top) * y / y_max, 1) + " ";
    }
    out += "\"/>";
    out += "<text x=\"" + fixed(w + 8, 0) + "\" y=\"" +
           fixed(top + 12 + 14 * static_cast<double>(i), 0) + "\" fill=\"" + color + "\">" +
           html_escape(s.name) + "</text>";
  }
  out += "</svg></figure>\n";
  return out;
}

}  // namespace

std::string Recorder::html(const std::string& scenario_name, double ran_s) const {
  std::string out = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>audience: " +
                    html_escape(scenario_name) +
                    "</"
                    "title><style>body{font-family:sans-serif;margin:2em;max-width:60em}table{"
                    "border-collapse:collapse}"
                    "td,th{border:1px solid #ccc;padding:2px "
                    "8px;text-align:right}figure{margin:1em 0}</style></head><body>\n";
  out +=
      "<h1>Rehearsal: " + html_escape(scenario_name) + "</h1>\n<p>Ran " + fixed(ran_s, 1) + " s. ";
  append_summary_html(out);
  append_viewer_charts_html(out);
  append_load_charts_html(out);
  append_tables_html(out);
  out += "<h2>Result JSON</h2><pre>" + html_escape(json(scenario_name, ran_s)) +
         "</pre></body></html>\n";
  return out;
}

// The rest of the opening paragraph, after the run's length.
void Recorder::append_summary_html(std::string& out) const {
  out += std::to_string(started_viewers_) + " viewers started playing; " +
         std::to_string(stalls_total_) + " stalls (" + fixed(stalled_total_s_, 1) +
         " s stalled) in " + std::to_string(viewers_with_stalls_) + " viewers; " +
         std::to_string(errors()) + " failed requests. The tool's own loop was late by " +
         number(percentile(loop_lag_.values(), 0.99).value_or(0)) + " ms at p99 (" +
         number(percentile(loop_lag_.values(), 1.0).value_or(0)) +
         " ms at most): far above a few ms, the machine running audience was the limit.";
  if (!behind_live_.values().empty()) {
    out += " Latency behind live: p50 " +
           fixed(percentile(behind_live_.values(), 0.5).value_or(0), 2) + " s, p95 " +
           fixed(percentile(behind_live_.values(), 0.95).value_or(0), 2) + " s, max " +
           fixed(percentile(behind_live_.values(), 1.0).value_or(0), 2) + " s.";
    // Neighbours in a stand hear each other cheer at moments this far apart.
    const std::vector<double> spreads = behind_live_spreads();
    if (!spreads.empty()) {
      out += " Spread across viewers at the same moment (p5 to p95 within a second): median " +
             fixed(percentile(spreads, 0.5).value_or(0), 2) + " s, p95 " +
             fixed(percentile(spreads, 0.95).value_or(0), 2) + " s.";
    }
  }
  out += "</p>\n";
}

// Startup, viewers playing and queued, latency behind live, stalls and failed requests.
void Recorder::append_viewer_charts_html(std::string& out) const {
  // Startup CDF.
  std::vector<double> sorted = startups_;
  std::sort(sorted.begin(), sorted.end());
  Series cdf{"startup", {}};
  for (size_t i = 0; i < sorted.size(); ++i) {
    cdf.points.emplace_back(sorted[i],
                            static_cast<double>(i + 1) / static_cast<double>(sorted.size()));
  }
  out += svg_chart("Startup time, cumulative share of viewers", "seconds", "share", {cdf});
  Series playing{"playing", {}}, queued{"queued", {}};
  for (size_t s = 0; s < ticks_.size(); ++s) {
    playing.points.emplace_back(static_cast<double>(s), static_cast<double>(ticks_[s].playing));
    queued.points.emplace_back(static_cast<double>(s), static_cast<double>(ticks_[s].queued));
  }
  out += svg_chart("Viewers playing and queued", "seconds", "viewers", {playing, queued});
  Series stalls{"stalls begun", {}}, stalled{"stalled now", {}}, errors{"failed requests", {}};
  for (size_t s = 0; s < ticks_.size(); ++s) {
    stalls.points.emplace_back(static_cast<double>(s), stalls_per_second_[s]);
    stalled.points.emplace_back(static_cast<double>(s), static_cast<double>(ticks_[s].stalled));
    errors.points.emplace_back(static_cast<double>(s), errors_per_second_[s]);
  }
  if (!behind_live_.values().empty()) {
    std::vector<Series> behind;
    for (const auto& [name, q] :
         {std::pair{"p50", 0.5}, std::pair{"p95", 0.95}, std::pair{"max", 1.0}}) {
      Series series{name, {}};
      for (size_t s = 0; s < behind_live_per_second_.size(); ++s) {
        if (auto v = behind_live_in_second(s, q)) series.points.emplace_back(s, *v);
      }
      behind.push_back(std::move(series));
    }
    out += svg_chart("Latency behind live over viewers (wall clock minus EXT-X-PROGRAM-DATE-TIME)",
                     "seconds", "seconds behind", behind);
  }
  out += svg_chart("Stalls and failed requests over time", "seconds", "per second",
                   {stalls, stalled, errors});
}

// Requests per second by kind, CPU and RSS of the watched processes.
void Recorder::append_load_charts_html(std::string& out) const {
  std::vector<Series> kinds;
  for (size_t k = 0; k < kRequestKinds; ++k) {
    if (!totals_[k]) continue;
    Series series{std::string(request_kind_name(static_cast<RequestKind>(k))), {}};
    for (size_t s = 0; s < per_second_.size(); ++s)
      series.points.emplace_back(static_cast<double>(s), per_second_[s][k]);
    kinds.push_back(std::move(series));
  }
  out += svg_chart("Requests per second by kind", "seconds", "requests/s", kinds);
  std::vector<Series> cpu, rss;
  for (const auto& [name, samples] : processes_) {
    Series c{name, {}}, r{name, {}};
    for (const auto& s : samples) {
      c.points.emplace_back(s.at_s, s.cpu_percent);
      r.points.emplace_back(s.at_s, s.rss_mib);
    }
    cpu.push_back(std::move(c));
    rss.push_back(std::move(r));
  }
  if (!cpu.empty()) {
    out += svg_chart("CPU of watched processes", "seconds", "% of a core", cpu);
    out += svg_chart("RSS of watched processes", "seconds", "MiB", rss);
  }
}

// Requests, windows, queue and origin fetches.
void Recorder::append_tables_html(std::string& out) const {
  out +=
      "<h2>Requests</h2><table><tr><th>kind</th><th>count</th><th>p50 ms</th><th>p99 ms</th></tr>";
  for (size_t k = 0; k < kRequestKinds; ++k) {
    if (!totals_[k]) continue;
    out += "<tr><td>" + std::string(request_kind_name(static_cast<RequestKind>(k))) + "</td><td>" +
           std::to_string(totals_[k]) + "</td><td>" +
           number(percentile(latencies_[k].values(), 0.5).value_or(0)) + "</td><td>" +
           number(percentile(latencies_[k].values(), 0.99).value_or(0)) + "</td></tr>";
  }
  out += "</table>\n";
  for (const auto& w : windows_) {
    out += "<h2>Window " + html_escape(w.name) + " (" + fixed(w.from_s, 0) + "–" +
           fixed(w.until_s, 0) + " s): requests per playing viewer per minute</h2><table>";
    for (const auto& [kind, value] : budget(w.name)) {
      out += "<tr><th>" + kind + "</th><td>" + fixed(value, 2) + "</td></tr>";
    }
    out += "</table>\n";
  }
  out += "<h2>Queue</h2><p>" + std::to_string(queue_.size()) + " viewers queued; " +
         std::to_string(queue_order_inversions()) + " admitted out of ticket order.</p>\n";
  if (!origin_fetches_.empty()) {
    out +=
        "<h2>Origin fetches</h2><table><tr><th>source</th><th>fetches</th><th>per distinct "
        "segment</th></tr>";
    for (const auto& [name, c] : origin_fetches_) {
      out +=
          "<tr><td>" + html_escape(name) + "</td><td>" + number(c.delta) + "</td><td>" +
          (segment_names_.empty() ? std::string("-")
                                  : number(c.delta / static_cast<double>(segment_names_.size()))) +
          "</td></tr>";
    }
    out += "</table>\n";
  }
}

}  // namespace audience
