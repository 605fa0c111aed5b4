// HMAC-SHA256 signatures for chunk URLs, shared by the balancer (signs) and the
// cache node (verifies). The signature covers the expiry and the URL path plus
// any query parameters other than the two signature parameters, so the signature
// parameters never become part of a cache key. Two keys allow rotation: the first
// signs, every configured key verifies. Comparison is constant-time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace signing {

inline constexpr std::string_view kSignatureExpiryParam = "bexp";
inline constexpr std::string_view kSignatureParam = "bsig";

enum class SignatureVerdict { ok, missing, malformed, expired, bad_signature };
const char* to_string(SignatureVerdict verdict);

class UrlSigner {
 public:
  // keys[0] signs; all verify. Fails if no key or a key shorter than 16 bytes.
  static core::Result<UrlSigner> create(std::vector<std::string> keys);

  // Returns canonical_unsigned_target(target) with "bexp=<expires>&bsig=<sig>"
  // appended: the form verify() checks, whatever the input looked like.
  std::string sign(std::string_view target, int64_t expires_unix) const;

  // Verifies a request target (path plus raw query). On ok, `unsigned_target`
  // (if given) receives the target without the signature parameters.
  SignatureVerdict verify(std::string_view target, int64_t now_unix,
                          std::string* unsigned_target = nullptr) const;

 private:
  explicit UrlSigner(std::vector<std::string> keys) : keys_(std::move(keys)) {}
  std::string mac(const std::string& key, std::string_view unsigned_target,
                  std::string_view expires) const;
  std::vector<std::string> keys_;
};

// Splits a request target "path?query" into its canonical unsigned form and the
// signature parameters: bexp and bsig (the last of each wins) and empty
// parameters ("&&", a trailing '&' or '?') are removed, the others kept in order
// and as written. Pure; exposed for the cache key, which is built from the same form.
struct SplitTarget {
  std::string unsigned_target;  // path + ("?" + remaining query, if any)
  std::string expires;          // raw value or empty
  std::string signature;        // raw value or empty
};
SplitTarget split_signed_target(std::string_view target);

// split_signed_target(target).unsigned_target: what a signature covers. sign()
// and verify() both go through it, so they cannot normalise differently.
std::string canonical_unsigned_target(std::string_view target);

}  // namespace signing
