// What the REST API asks of the server it is linked into (the balancer
// implements it; DESIGN.md dependency rules: the API asks admission through a
// small interface and never reaches into playlist code). Every method may be
// called from any loop thread and returns at once (admit answers through a callback).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/event_loop.h"
#include "core/result.h"
#include "http/server/http_exchange.h"

namespace api {

// A channel as the app sees it.
struct ChannelEntry {
  std::string id;
  std::string title;
  bool free = false;
  std::string product;  // the product that unlocks it ("" when free)
  std::string
      playlist;  // URL (path-absolute unless a public URL is configured) of its master playlist
};

// A cache node the app should ping.
struct CacheEntry {
  std::string id;
  std::string site;
  std::string ping_url;
};

// An admission decision. When not admitted, the reply to send as it is (the
// queue's 503 with its ticket and position, a 429 or 503 refusal, a 400).
struct AdmissionAnswer {
  bool admitted = false;
  int status = 200;
  std::string body;
  std::vector<http::HttpHeader> headers;
};

class PlaybackHost {
 public:
  virtual ~PlaybackHost() = default;
  // The configured channels, in configuration order.
  virtual std::vector<ChannelEntry> channels() const = 0;
  // The cache nodes that are currently usable (healthy, not overloaded).
  virtual std::vector<CacheEntry> usable_caches() const = 0;
  // The viewer key that a playlist request with these credentials would use on
  // `channel` ("t:<ticket viewer>" or "v:<viewer id>"), or the playlist
  // endpoint's error (credentials_required, ticket_required, ticket_* ...,
  // not_entitled for a viewer id on a paid channel; unknown_channel when there
  // is no such channel).
  virtual core::Result<std::string> viewer_key(const std::string& channel,
                                               const std::string& ticket,
                                               const std::string& viewer) const = 0;
  // The admission decision for `viewer_key` on `channel` (renews a queue
  // ticket, refreshes a slot), as the playlist endpoint would decide it.
  // `done` runs on `loop` (the caller's), inline or later (a shared admission
  // store is asked over the network).
  virtual void admit(const std::string& viewer_key, const std::string& channel,
                     const std::string& remote_ip, core::EventLoop& loop,
                     std::function<void(const AdmissionAnswer&)> done) = 0;
  // The viewer `viewer_key` stops watching (its device signed out): frees its stream slot or
  // drops its queue ticket, on `loop` (the caller's), now or once a shared admission store
  // answered. Nothing to report: a viewer that held neither is fine.
  virtual void release(const std::string& viewer_key, core::EventLoop& loop) = 0;
  // A playback ticket for `viewer_id` on `channel` until `expires_unix`
  // (error "bad_ticket" for ids the ticket format refuses).
  virtual core::Result<std::string> issue_ticket(const std::string& channel,
                                                 const std::string& viewer_id,
                                                 int64_t expires_unix) const = 0;
};

}  // namespace api
