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
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "signing/playback_ticket.h"
#include "support/http_client.h"
#include "support/json_error.h"
#include "support/origin_fixture.h"
#include "support/process.h"
#include "support/server_process.h"
#include "support/text_lines.h"

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

// A media playlist of `count` 1-second segments "s<N>.ts" (about 27 bytes each) after `header`,
// with an end tag when `endlist`.
inline std::string long_playlist(int count, const std::string& header = "", bool endlist = false) {
  std::string out = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n" + header;
  out.reserve(out.size() + static_cast<size_t>(count) * 28 + 32);
  char line[48];
  for (int i = 0; i < count; ++i) {
    int n = std::snprintf(line, sizeof line, "#EXTINF:1.000,\ns%07d.ts\n", i);
    out.append(line, static_cast<size_t>(n));
  }
  if (endlist) out += "#EXT-X-ENDLIST\n";
  return out;
}

// What test_origin serves for a live channel: <dir>/root, with a live playlist of three
// segments from `first` written as /files/live/index.m3u8.
inline TestOriginOptions live_files(const TempDir& dir, uint64_t first = 1) {
  write_file(dir.file("root/live/index.m3u8"), live_playlist(first, 3));
  return serving_files(dir.file("root"));
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

inline std::string make_ticket(const std::string& channel, const std::string& viewer,
                               int64_t ttl_s = 300, const std::string& key = kTicketKey) {
  auto tickets = signing::PlaybackTickets::create({key});
  REQUIRE(tickets.ok());
  auto token = tickets->issue({channel, viewer, static_cast<int64_t>(time(nullptr)) + ttl_s});
  REQUIRE(token.ok());
  return token.value();
}

class BalancerProcess : public ServerProcess {
 public:
  // `origin_base` is the base URL for origin "demo" (e.g. origin.url("/files")).
  // `main_config`: the main config file; "" = the example conf/balancer.json.
  // The fixture's --set overrides apply on top of it (and win on reload too).
  BalancerProcess(const TempDir& dir, std::string origin_base, const std::string& channels,
                  const std::string& caches, std::vector<std::string> overrides = {},
                  std::string main_config = "")
      : ServerProcess("balancer",
                      main_config.empty() ? std::string(BALANCER_SOURCE_DIR) + "/conf/balancer.json"
                                          : std::move(main_config),
                      std::move(overrides)),
        channels_path_(dir.file("balancer/channels.json")),
        api_dir_(dir.file("balancer/api")),
        caches_path_(dir.file("balancer/caches.json")),
        origin_base_(std::move(origin_base)) {
    write_file(channels_path_, channels);
    write_file(caches_path_, caches);
    start();
  }

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

 private:
  std::vector<std::string> fixture_settings() const override {
    return {"listen.port=" + std::to_string(port() > 0 ? port() : 0),
            "channels_file=" + channels_path_, "caches_file=" + caches_path_,
            "origins.demo.url=" + origin_base_, "signing.keys=[\"" + kBalancerSigningKey + "\"]",
            "playback.ticket_keys=[\"" + kTicketKey + "\"]", "playback.allow_anonymous=true",
            "health.interval_ms=200", "health.timeout_ms=150", "health.up_after=2",
            "health.down_after=2", "server.access_log=false",
            // Bare media playlists as they are (the tests of their made
            // masters turn this on: balancer_steering_test).
            "steering.media_masters=false", "api.data_dir=" + api_dir_,
            // No products unless a test names a file (its paid channels use "gold").
            "api.products_file="};
  }

  std::string channels_path_;
  std::string api_dir_;  // the REST API's account store, private to the test
  std::string caches_path_;
  std::string origin_base_;
};

// A test_origin and a balancer in front of it (origin "demo" at its /files), both in `dir`:
// a test's stack derives from it, writes the origin's files, then starts them in that order.
struct BalancerOnOrigin {
  void start_origin(TestOriginOptions options) {
    origin = std::make_unique<TestOrigin>(std::move(options));
  }
  void start_balancer(const std::string& channels, const std::string& caches,
                      std::vector<std::string> overrides) {
    balancer = std::make_unique<BalancerProcess>(dir, origin->url("/files"), channels, caches,
                                                 std::move(overrides));
  }
  TempDir dir;
  std::unique_ptr<TestOrigin> origin;
  std::unique_ptr<BalancerProcess> balancer;
};

// Lines of a playlist that are URIs (not tags, not blank).
inline std::vector<std::string> uri_lines(const std::string& playlist) {
  std::vector<std::string> out;
  for (auto& line : split_lines(playlist)) {
    if (!line.empty() && line[0] != '#') out.push_back(std::move(line));
  }
  return out;
}

// A low-latency live playlist of segments first..first+count-1 with two parts each, the
// next segment still being written (`next_parts` parts) and a preload hint for its next part.
inline std::string low_latency_playlist(int first, int count, int next_parts = 1) {
  std::string out =
      "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=1.0\n"
      "#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=3.0\n#EXT-X-MEDIA-SEQUENCE:" +
      std::to_string(first) + "\n#EXT-X-MAP:URI=\"init.mp4\"\n";
  for (int i = first; i < first + count; ++i) {
    const std::string n = std::to_string(i);
    out += "#EXT-X-PART:DURATION=1.0,URI=\"seg" + n + ".0.m4s\",INDEPENDENT=YES\n";
    out += "#EXT-X-PART:DURATION=1.0,URI=\"seg" + n + ".1.m4s\"\n";
    out += "#EXTINF:2.0,\nseg" + n + ".m4s\n";
  }
  const std::string next = std::to_string(first + count);
  for (int part = 0; part < next_parts; ++part) {
    out += "#EXT-X-PART:DURATION=1.0,URI=\"seg" + next + "." + std::to_string(part) + ".m4s\"" +
           (part == 0 ? ",INDEPENDENT=YES\n" : "\n");
  }
  out += "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg" + next + "." + std::to_string(next_parts) +
         ".m4s\"\n";
  out += "#EXT-X-RENDITION-REPORT:URI=\"../high/index.m3u8\",LAST-MSN=" + next +
         ",LAST-PART=" + std::to_string(next_parts - 1) + "\n";
  return out;
}

// Every chunk link (segments, parts, map, hint) of a viewer's copy, by the chunk's name.
inline std::map<std::string, std::string> chunk_links_by_name(const std::string& playlist) {
  std::map<std::string, std::string> out;
  auto note = [&](const std::string& link) {
    const std::string path = link.substr(0, link.find('?'));
    out[path.substr(path.rfind('/') + 1)] = link;
  };
  for (const std::string& line : uri_lines(playlist)) note(line);
  size_t at = 0;
  while ((at = playlist.find("URI=\"", at)) != std::string::npos) {
    const size_t end = playlist.find('"', at + 5);
    const std::string uri = playlist.substr(at + 5, end - at - 5);
    if (uri.find("/o/") != std::string::npos) note(uri);
    at = end;
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

// SKIPPED-SEGMENTS of a delta update's EXT-X-SKIP, or -1 when it has none.
inline int64_t skipped_segments(const std::string& playlist) {
  const size_t at = playlist.find("#EXT-X-SKIP:SKIPPED-SEGMENTS=");
  if (at == std::string::npos) return -1;
  return std::stoll(playlist.substr(at + 29));
}

}  // namespace balancer::test
