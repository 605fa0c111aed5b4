// Playback tickets: short-lived HMAC-SHA256 signed tokens that let one viewer
// play one channel (or every channel, "*") until an expiry. The REST API issues
// them; the balancer verifies them on every playlist and key request. A ticket
// is never a login token: it names no user secret and grants nothing but playback.
//
// Format (URL-safe, no padding): base64url(payload) "." base64url(mac), where
//   payload = "1\n<expires unix>\n<channel or *>\n<viewer id>"
//   mac     = HMAC-SHA256(key, "playback-ticket." + base64url(payload))
// The prefix keeps a ticket MAC from ever equalling a chunk URL signature when an
// operator reuses a key. Two or more keys allow rotation: the first issues, every
// key verifies. MAC comparison is constant-time.
//
// Pure (no clock: callers pass `now`), no globals; a PlaybackTickets value is
// immutable and may be used from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace signing {

inline constexpr size_t kMaxTicketBytes = 1024;
inline constexpr size_t kMaxViewerIdBytes = 128;
inline constexpr std::string_view kAnyChannel = "*";

struct PlaybackTicket {
  std::string channel;  // a channel id, or "*" for every channel
  std::string viewer;   // opaque viewer id chosen by the issuer (1..128 printable ASCII)
  int64_t expires_unix = 0;

  bool covers(std::string_view channel_id) const {
    return channel == kAnyChannel || channel == channel_id;
  }
};

// True for 1..64 characters of [A-Za-z0-9_-] (the channel id alphabet).
bool valid_channel_id(std::string_view id);
// True for 1..kMaxViewerIdBytes printable ASCII characters without spaces.
bool valid_viewer_id(std::string_view id);

class PlaybackTickets {
 public:
  // keys[0] issues; all verify. Fails ("bad_config") with no key or a key under 16 bytes.
  static core::Result<PlaybackTickets> create(std::vector<std::string> keys);

  // The token for `ticket`. Fails ("bad_ticket") when the channel or viewer id is
  // not valid (see valid_channel_id / valid_viewer_id; "*" is allowed as channel).
  core::Result<std::string> issue(const PlaybackTicket& ticket) const;

  // Checks `token` and that it covers `channel_id` at `now_unix`. Error codes, in
  // the order they are checked (all for a 401, except the last, a 403):
  //   ticket_malformed  not a ticket (bad base64url, fields, size)
  //   ticket_invalid    the MAC matches no configured key (tampered or foreign)
  //   ticket_expired    expires_unix < now_unix
  //   ticket_wrong_channel  valid, but for another channel
  core::Result<PlaybackTicket> verify(std::string_view token, std::string_view channel_id,
                                      int64_t now_unix) const;

 private:
  explicit PlaybackTickets(std::vector<std::string> keys) : keys_(std::move(keys)) {}
  std::vector<std::string> keys_;
};

// Base64url without padding (RFC 4648 section 5), exposed for tests.
std::string base64url_encode(std::string_view bytes);
// Nullopt-like failure as false: rejects padding, whitespace and bad characters.
bool base64url_decode(std::string_view text, std::string& out);

}  // namespace signing
