// Session ticket keys shared by every server given the same secret: TLS 1.3 and 1.2
// tickets that one balancer (or cache node) issues, its siblings open, so a phone that
// moves to another server of the fleet or site resumes instead of a full handshake.
// The keys follow from the secret and the wall clock alone (HMAC-SHA256 of the secret
// and the rotation window's number): no store to share, rotation on a schedule, and a
// key never outlives two windows. Pure: the time is passed in.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace http {

struct TicketKey {
  std::array<unsigned char, 16> name{};  // sent in each ticket: which key sealed it
  std::array<unsigned char, 32> aes{};   // AES-256-CBC key of the ticket's contents
  std::array<unsigned char, 32> mac{};   // HMAC-SHA256 key over the sealed ticket
};

// Shortest and longest secret accepted (bytes of the file, used as they are).
inline constexpr size_t kTicketSecretMinBytes = 32;
inline constexpr size_t kTicketSecretMaxBytes = 4096;

// The key of rotation window `window` (unix seconds / rotation seconds) for `secret`.
TicketKey ticket_key_for_window(std::string_view secret, int64_t window);

// The window that seals new tickets at `unix_s`. Tickets sealed in that window, the one
// before (a ticket at most one window old) and the one after (a sibling whose clock runs
// a little ahead) are opened; an older one is refused and the client does a full handshake.
int64_t ticket_window(int64_t unix_s, int64_t rotation_s);

// A secret and the keys of the last few windows asked for, each derived once: every
// handshake seals or opens a ticket or two, each using one to three windows' keys, and a
// window's key takes three HMACs (about 3 us each through OpenSSL 3's one-shot HMAC,
// measured). Any thread: the loops' handshakes share it.
class TicketKeys {
 public:
  explicit TicketKeys(std::string secret) : secret_(std::move(secret)) {}
  bool empty() const { return secret_.empty(); }
  // ticket_key_for_window(secret, window).
  TicketKey for_window(int64_t window) const;

 private:
  struct Recent {
    int64_t window = 0;
    TicketKey key;
  };
  std::string secret_;
  mutable std::mutex mutex_;
  // The windows around now: the sealing one, the one before and the one after.
  mutable std::array<Recent, 4> recent_;
  mutable size_t filled_ = 0;
  mutable size_t next_ = 0;  // the slot a new window takes once all are filled
};

}  // namespace http
