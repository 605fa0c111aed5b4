#include "signing/site_fetch.h"

#include <openssl/crypto.h>

#include <charconv>

#include "signing/keyed_hmac.h"
#include "signing/playback_ticket.h"

namespace signing {
namespace {

std::string proof(std::string_view key, std::string_view node_id, std::string_view receiver_id,
                  std::string_view expires, std::string_view target) {
  // A tag of its own: a proof of the earlier form (no receiver) never matches this one.
  std::string message = "site-fetch-to\n";
  message.append(node_id).append("\n").append(receiver_id).append("\n");
  message.append(expires).append("\n").append(target);
  unsigned char digest[kHmacSha256Bytes];
  // Failing (OpenSSL out of memory), no proof: verify_site_fetch accepts none then.
  if (!hmac_sha256(key, message, digest)) return std::string();
  return base64url_encode(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

}  // namespace

std::string site_fetch_header(std::string_view key, std::string_view node_id,
                              std::string_view receiver_id, std::string_view target,
                              int64_t now_unix) {
  const std::string expires = std::to_string(now_unix + kSiteFetchProofLifetimeS);
  std::string out(node_id);
  out.append(" ").append(expires).append(" ").append(
      proof(key, node_id, receiver_id, expires, target));
  return out;
}

std::optional<std::string> verify_site_fetch(std::string_view header, std::string_view key,
                                             std::string_view receiver_id, std::string_view target,
                                             int64_t now_unix) {
  const size_t first = header.find(' ');
  const size_t second = first == std::string_view::npos ? first : header.find(' ', first + 1);
  if (second == std::string_view::npos || first == 0) return std::nullopt;
  const std::string_view node_id = header.substr(0, first);
  const std::string_view expires = header.substr(first + 1, second - first - 1);
  const std::string_view presented = header.substr(second + 1);
  int64_t expires_unix = 0;
  const auto [end, ec] =
      std::from_chars(expires.data(), expires.data() + expires.size(), expires_unix);
  if (ec != std::errc() || end != expires.data() + expires.size()) return std::nullopt;
  const std::string expected = proof(key, node_id, receiver_id, expires, target);
  if (expected.empty() || presented.size() != expected.size() ||
      CRYPTO_memcmp(presented.data(), expected.data(), expected.size()) != 0) {
    return std::nullopt;
  }
  if (expires_unix < now_unix) return std::nullopt;
  return std::string(node_id);
}

}  // namespace signing
