// Content keys (EXT-X-KEY / EXT-X-SESSION-KEY URIs) fetched from origin for
// entitled viewers: kept for a short TTL, concurrent requests share one fetch,
// never fetched through cache nodes. One per process, on the fetch loop; serving loops ask it
// through KeyFetcher (balancer_fetchers.h). Its loop's thread only: each entry point and timer
// checks it (expect_on).
#pragma once

#include <event2/event.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/event_loop.h"
#include "core/handles.h"
#include "core/metrics.h"
#include "core/result.h"
#include "core/thread_rule.h"
#include "http/client/coalesced_fetch.h"
#include "http/client/http_client.h"

namespace balancer {

struct KeyBytes {
  std::string bytes;
  std::string content_type;
};

struct KeyStoreOptions {
  std::chrono::milliseconds ttl{30000};     // key_delivery.ttl_s
  std::chrono::milliseconds timeout{3000};  // playlists.fetch_timeout_ms
  size_t max_bytes = 64 * 1024;             // key_delivery.max_bytes
};

// ok → the key; error code is one of not_found (404), origin_unreachable /
// origin_error / key_too_large (502), origin_timeout (504) (http/client/coalesced_fetch.h
// maps them); `status` carries it.
struct KeyResult {
  std::shared_ptr<const KeyBytes> key;
  int status = 0;
  core::Error error;
};
using KeyCallback = std::function<void(const KeyResult&)>;

// The one door of the fetch loop's key store that other loops use: any loop; `done` runs on
// `back`.
class KeyFetcher {
 public:
  virtual ~KeyFetcher() = default;
  virtual void fetch_key(core::EventLoop& back, const std::string& url, KeyCallback done) = 0;
};

class KeyStore {
 public:
  // `loop` (the fetch loop; its timer runs there), `client` (on that loop) and `metrics` must
  // outlive the store.
  KeyStore(core::EventLoop& loop, http::HttpClient& client, core::MetricsRegistry& metrics,
           KeyStoreOptions options, const core::Clock& clock = core::Clock::real());
  ~KeyStore();
  KeyStore(const KeyStore&) = delete;
  KeyStore& operator=(const KeyStore&) = delete;

  void set_options(KeyStoreOptions options) {
    core::expect_on(loop_);
    options_ = options;
  }
  // Calls `done` once: at once for a cached key, else when the shared fetch ends.
  void get(const std::string& url, KeyCallback done);

 private:
  struct Entry {
    std::shared_ptr<const KeyBytes> key;
    std::chrono::steady_clock::time_point fetched_at{};  // when the fetch that got it started
  };
  // One origin fetch in progress, shared by every request for its URL.
  struct Transfer {
    http::FetchId id = 0;
    std::chrono::steady_clock::time_point started{};
    int status = 0;
    std::string content_type;
    http::CappedBody body;
  };
  void start_fetch(const std::string& url, Transfer& transfer);
  void on_done(const std::string& url, const http::FetchResult& result);
  void sweep();

  core::EventLoop& loop_;
  http::HttpClient& client_;
  const core::Clock& clock_;
  KeyStoreOptions options_;
  std::unordered_map<std::string, Entry> entries_;  // keys fetched, until their TTL passes
  http::CoalescedFetches<KeyCallback, Transfer> in_flight_;
  core::LoopTimer sweep_timer_{loop_, core::LoopTimer::Repeat::every, [this] { sweep(); }};
  core::Counter& fetches_;
  core::Counter& hits_;
  core::MetricsRegistry& metrics_;
};

}  // namespace balancer
