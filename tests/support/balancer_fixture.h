// Starts a real balancer binary for integration tests, with its channels and
// caches files written into a temp dir, plus helpers to read its metrics and
// write live playlists atomically for test_origin to serve.
#pragma once

#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/playback_ticket.h"
#include "support/http_client.h"
#include "support/origin_fixture.h"
#include "support/process.h"

namespace balancer::test {

inline const std::string kBalancerSigningKey =
    "integration-key-current-0001";  // = the cache nodes'
inline const std::string kTicketKey = "integration-ticket-key-00001";

// Writes `text` to `path` atomically (temp file + rename), creating directories.
inline void write_file(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
  }
  std::filesystem::rename(tmp, path);
}

// A live media playlist of `count` segments starting at `first` ("seg<N>.ts").
inline std::string live_playlist(uint64_t first, int count, int target_duration = 2,
                                 const std::string& extra_header = "") {
  std::string out =
      "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:" + std::to_string(target_duration) +
      "\n#EXT-X-MEDIA-SEQUENCE:" + std::to_string(first) + "\n" + extra_header;
  for (int i = 0; i < count; ++i) {
    out += "#EXTINF:" + std::to_string(target_duration) + ".0,\nseg" + std::to_string(first + i) +
           ".ts\n";
  }
  return out;
}

// One channel entry for channels.json.
inline std::string channel_json(const std::string& id, const std::string& source,
                                bool free = true) {
  return "{\"id\":\"" + id + "\",\"origin\":\"demo\",\"source\":\"" + source + "\"," +
         (free ? std::string("\"free\":true") : std::string("\"product\":\"gold\"")) + "}";
}

inline std::string channels_json(const std::vector<std::string>& entries) {
  std::string out = "{\"channels\":[";
  for (size_t i = 0; i < entries.size(); ++i) out += (i ? "," : "") + entries[i];
  return out + "]}";
}

// One cache entry for caches.json.
inline std::string cache_json(const std::string& id, const std::string& site, int port,
                              const std::string& networks = "[]") {
  return "{\"id\":\"" + id + "\",\"site\":\"" + site +
         "\",\"url\":\"http://127.0.0.1:" + std::to_string(port) + "\",\"networks\":" + networks +
         "}";
}

inline std::string caches_json(const std::vector<std::string>& entries) {
  std::string out = "{\"caches\":[";
  for (size_t i = 0; i < entries.size(); ++i) out += (i ? "," : "") + entries[i];
  return out + "]}";
}

// The value of one Prometheus series line "name{labels} value" (exact name+labels).
inline std::optional<double> metric_value(const std::string& metrics, const std::string& series) {
  size_t pos = 0;
  while ((pos = metrics.find(series + " ", pos)) != std::string::npos) {
    if (pos == 0 || metrics[pos - 1] == '\n') {
      return std::stod(metrics.substr(pos + series.size() + 1));
    }
    pos += series.size();
  }
  return std::nullopt;
}

inline std::string make_ticket(const std::string& channel, const std::string& viewer,
                               int64_t ttl_s = 300, const std::string& key = kTicketKey) {
  auto tickets = common::PlaybackTickets::create({key});
  REQUIRE(tickets.ok());
  auto token = tickets->issue({channel, viewer, static_cast<int64_t>(time(nullptr)) + ttl_s});
  REQUIRE(token.ok());
  return token.value();
}

inline bool is_json_error_reply(const HttpResponse& r, const std::string& code) {
  return r.header("Content-Type").value_or("").find("application/json") == 0 &&
         r.body.find("{\"error\":{\"code\":\"" + code + "\",\"message\":\"") == 0;
}

class BalancerProcess {
 public:
  // `origin_base` is the base URL for origin "demo" (e.g. origin.url("/files")).
  // `main_config`: the main config file; "" = the example conf/balancer.json.
  // The fixture's --set overrides apply on top of it (and win on reload too).
  BalancerProcess(const TempDir& dir, std::string origin_base, const std::string& channels,
                  const std::string& caches, std::vector<std::string> overrides = {},
                  std::string main_config = "")
      : channels_path_(dir.file("balancer/channels.json")),
        api_dir_(dir.file("balancer/api")),
        caches_path_(dir.file("balancer/caches.json")),
        origin_base_(std::move(origin_base)),
        overrides_(std::move(overrides)),
        main_config_(main_config.empty() ? std::string(BALANCER_SOURCE_DIR) + "/conf/balancer.json"
                                         : std::move(main_config)) {
    write_file(channels_path_, channels);
    write_file(caches_path_, caches);
    start();
  }

  void start() {
    std::vector<std::string> argv = {
        binary_path("balancer"), "--config", main_config_, "--set", "listen.port=0", "--set",
        "channels_file=" + channels_path_, "--set", "caches_file=" + caches_path_, "--set",
        "origins.demo.url=" + origin_base_, "--set",
        "signing.keys=[\"" + kBalancerSigningKey + "\"]", "--set",
        "playback.ticket_keys=[\"" + kTicketKey + "\"]", "--set", "playback.allow_anonymous=true",
        "--set", "health.interval_ms=200", "--set", "health.timeout_ms=150", "--set",
        "health.up_after=2", "--set", "health.down_after=2", "--set", "server.access_log=false",
        // Bare media playlists as they are (the tests of their made
        // masters turn this on: balancer_steering_test).
        "--set", "steering.media_masters=false", "--set", "api.data_dir=" + api_dir_,
        // No products unless a test names a file (its paid channels use "gold").
        "--set", "api.products_file="};
    for (const auto& o : overrides_) {
      argv.push_back("--set");
      argv.push_back(o);
    }
    for (auto& a : threads_args()) argv.push_back(a);
    process_ = std::make_unique<ChildProcess>();
    std::string error;
    REQUIRE_MESSAGE(process_->start(argv, {}, {}, &error), error);
    port_ = process_->wait_for_listening_port(deadline_in(std::chrono::seconds(10)), &tls_port_);
    REQUIRE_MESSAGE(port_ > 0, process_->stderr_text());
  }

  int port() const { return port_; }
  int tls_port() const { return tls_port_; }
  std::string url(const std::string& target) const { return local_url(port_, target); }
  HttpResponse get(const std::string& target) const { return http_get(url(target)); }
  std::string metrics() const { return http_get(url("/metrics")).body; }
  double metric(const std::string& series) const {
    return metric_value(metrics(), series).value_or(-1);
  }
  std::string health() const { return http_get(url("/health")).body; }
  // Waits until /health lists cache `id` with "usable":`usable`.
  bool wait_cache_usable(const std::string& id, bool usable,
                         std::chrono::milliseconds timeout) const {
    std::string needle = "{\"id\":\"" + id + "\",";
    return wait_until(
        [&] {
          std::string h = health();
          size_t at = h.find(needle);
          if (at == std::string::npos) return false;
          size_t end = h.find('}', at);
          return h.substr(at, end - at).find(usable ? "\"usable\":true" : "\"usable\":false") !=
                 std::string::npos;
        },
        timeout, std::chrono::milliseconds(20));
  }

  void write_channels(const std::string& text) const { write_file(channels_path_, text); }
  void write_caches(const std::string& text) const { write_file(caches_path_, text); }
  // SIGHUP, then waits until the reload counter for `result` moved.
  bool reload(const std::string& result = "ok") const {
    std::string series = "balancer_config_reloads_total{result=\"" + result + "\"}";
    double before = metric(series);
    ::kill(process_->pid(), SIGHUP);
    return wait_until([&] { return metric(series) > before; }, std::chrono::seconds(5));
  }
  ChildProcess& process() { return *process_; }
  void stop() {
    process_->terminate();
    REQUIRE(process_->wait_exit(deadline_in(std::chrono::seconds(15))).has_value());
  }

 private:
  std::string channels_path_;
  std::string api_dir_;  // the REST API's account store, private to the test
  std::string caches_path_;
  std::string origin_base_;
  std::vector<std::string> overrides_;
  std::string main_config_;
  std::unique_ptr<ChildProcess> process_;
  int port_ = -1;
  int tls_port_ = 0;
};

// Lines of a playlist that are URIs (not tags, not blank).
inline std::vector<std::string> uri_lines(const std::string& playlist) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < playlist.size()) {
    size_t nl = playlist.find('\n', start);
    if (nl == std::string::npos) nl = playlist.size();
    std::string line = playlist.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line[0] != '#') out.push_back(line);
    start = nl + 1;
  }
  return out;
}

// The value of attribute URI="..." on the first line starting with `tag`.
inline std::string tag_uri(const std::string& playlist, const std::string& tag) {
  size_t at = playlist.find(tag);
  if (at == std::string::npos) return "";
  size_t uri = playlist.find("URI=\"", at);
  size_t end = playlist.find('"', uri + 5);
  if (uri == std::string::npos || end == std::string::npos) return "";
  return playlist.substr(uri + 5, end - uri - 5);
}

// "http://127.0.0.1:P/x?y" → "/x?y".
inline std::string target_of(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  size_t slash = url.find('/', scheme + 3);
  return slash == std::string::npos ? "/" : url.substr(slash);
}

// The media sequence number of a playlist, or -1.
inline int64_t media_sequence(const std::string& playlist) {
  size_t at = playlist.find("#EXT-X-MEDIA-SEQUENCE:");
  if (at == std::string::npos) return -1;
  return std::stoll(playlist.substr(at + 22));
}

}  // namespace balancer::test
