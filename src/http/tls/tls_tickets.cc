#include "http/tls/tls_tickets.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <utility>

namespace http {
namespace {

// HMAC-SHA256(secret, label || big-endian window): 32 bytes.
std::array<unsigned char, 32> derive(std::string_view secret, std::string_view label,
                                     int64_t window) {
  std::string input(label);
  for (int shift = 56; shift >= 0; shift -= 8)
    input.push_back(static_cast<char>((static_cast<uint64_t>(window) >> shift) & 0xff));
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), out.data(), &len);
  return out;
}

}  // namespace

TicketKey ticket_key_for_window(std::string_view secret, int64_t window) {
  TicketKey key;
  const auto name = derive(secret, "balancer ticket name", window);
  std::copy(name.begin(), name.begin() + key.name.size(), key.name.begin());
  key.aes = derive(secret, "balancer ticket aes", window);
  key.mac = derive(secret, "balancer ticket mac", window);
  return key;
}

int64_t ticket_window(int64_t unix_s, int64_t rotation_s) {
  if (rotation_s <= 0) rotation_s = 1;
  // Floor division: a clock before 1970 still gets whole windows.
  return unix_s >= 0 ? unix_s / rotation_s : -((-unix_s + rotation_s - 1) / rotation_s);
}

TicketKey TicketKeys::for_window(int64_t window) const {
  std::lock_guard lock(mutex_);
  for (size_t i = 0; i < filled_; ++i) {
    if (recent_[i].window == window) return recent_[i].key;
  }
  const size_t slot =
      filled_ < recent_.size() ? filled_++ : std::exchange(next_, (next_ + 1) % recent_.size());
  recent_[slot] = Recent{window, ticket_key_for_window(secret_, window)};
  return recent_[slot].key;
}

}  // namespace http
