// TestOrigin: a test_origin child process on 127.0.0.1 with an ephemeral port, plus
// helpers to build its URLs and read its request counters. For tests only; one
// thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/process.h"

namespace balancer::test {

struct TestOriginOptions {
  std::string root;    // --root: served under /files/ ("" = none)
  long delay_ms = 0;   // --delay-ms default for /gen
  long rate_kbps = 0;  // --rate-kbps default for /gen
  std::vector<std::string> extra_args;
  std::chrono::milliseconds start_timeout{5'000};
};

// An origin serving the files under `root` at /files/, with no other option set.
inline TestOriginOptions serving_files(std::string root) {
  TestOriginOptions options;
  options.root = std::move(root);
  return options;
}

class TestOrigin {
 public:
  // Starts test_origin from the build tree and waits until it listens. Throws
  // std::runtime_error (with the child's stderr) when it cannot start.
  explicit TestOrigin(const TestOriginOptions& options = {});

  int port() const { return port_; }
  // "http://127.0.0.1:<port>" + path.
  std::string url(std::string_view path) const;
  // Base URL without a trailing slash, e.g. for a cache node's origins.<id>.url.
  std::string base_url() const;

  // Requests the origin counted for `path` (exact, with or without query), via
  // /__stats?path=. -1 when the stats request fails.
  int64_t count(std::string_view path) const;
  // Of those, the conditional ones (If-None-Match or If-Modified-Since), and the
  // ones answered 304. -1 when the stats request fails.
  int64_t conditional(std::string_view path) const;
  int64_t not_modified(std::string_view path) const;
  // Every /gen and /files request answers `status` from now on (0: normal again); with
  // `chunks_only`, all but playlists (a source whose chunks fail while its playlists move).
  bool outage(int status, bool chunks_only = false) const;
  // Playlists answer the copy they had when the stall began (a source that stops moving while
  // its origin answers 200), until stall(false).
  bool stall(bool on) const;
  int64_t total() const;  // all counted requests; -1 on failure
  // Counted requests whose User-Agent starts with `prefix` ("" counts all); -1 on failure.
  int64_t count_from(std::string_view agent_prefix) const;
  // Counted requests whose User-Agent does not start with `prefix`; -1 on failure. (Not
  // count_from("") - count_from(prefix): requests arriving between two reads would count.)
  int64_t count_not_from(std::string_view agent_prefix) const;
  int64_t in_flight() const;      // requests started and not finished; -1 on failure
  int64_t max_in_flight() const;  // since start or the last reset(); -1 on failure
  int64_t held() const;           // requests with hold=1 waiting for release(); -1 on failure
  // Every request held by hold=1 goes on (after its delay_ms, if any); how many, -1 on failure.
  int64_t release() const;
  std::string stats_json() const;  // GET /__stats body ("" on failure)
  bool reset() const;              // POST /__reset

  ChildProcess& process() { return process_; }

 private:
  ChildProcess process_;
  int port_ = -1;
};

// Percent-encodes everything but unreserved characters and '/'.
std::string url_encode(std::string_view s);

// Integer value of "key": in a flat JSON text; nullopt when absent.
std::optional<int64_t> json_integer(std::string_view json, std::string_view key);

}  // namespace balancer::test
