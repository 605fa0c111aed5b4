#include "api/token.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "signing/playback_ticket.h"

namespace api {

// The one base64url codec is common's (playback tickets use it too).
std::string base64url_encode(std::string_view bytes) {
  return signing::base64url_encode(bytes);
}

std::optional<std::string> base64url_decode(std::string_view text) {
  std::string out;
  if (!signing::base64url_decode(text, out)) return std::nullopt;
  return out;
}

std::optional<std::string> new_token() {
  unsigned char bytes[kTokenBytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return std::nullopt;
  return base64url_encode(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

std::string token_hash(std::string_view token) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

bool well_formed_token(std::string_view token) {
  if (token.size() != kTokenChars) return false;
  for (char c : token) {
    const bool url_safe = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                          (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!url_safe) return false;
  }
  return true;
}

bool hashes_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace api
