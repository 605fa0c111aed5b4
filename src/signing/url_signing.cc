#include "signing/url_signing.h"

#include <openssl/crypto.h>

#include <charconv>

#include "core/enum_names.h"
#include "core/url.h"
#include "signing/keyed_hmac.h"

namespace signing {
namespace {

std::string base64url(const unsigned char* data, size_t n) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((n * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == n) {
    uint32_t v = data[i] << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
  } else if (i + 2 == n) {
    uint32_t v = (data[i] << 16) | (data[i + 1] << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
  }
  return out;
}

}  // namespace

const char* to_string(SignatureVerdict verdict) {
  static constexpr const char* kVerdictNames[] = {"ok", "missing", "malformed", "expired",
                                                  "bad_signature"};
  static_assert(std::size(kVerdictNames) == core::enum_count(SignatureVerdict::bad_signature));
  return core::enum_name(verdict, kVerdictNames);
}

core::Result<UrlSigner> UrlSigner::create(std::vector<std::string> keys) {
  if (keys.empty()) return core::Error{"bad_config", "at least one signing key is required"};
  for (const auto& k : keys) {
    if (k.size() < 16)
      return core::Error{"bad_config", "signing keys must be at least 16 bytes long"};
  }
  return UrlSigner(std::move(keys));
}

SplitTarget split_signed_target(std::string_view target) {
  SplitTarget out;
  auto q = target.find('?');
  out.unsigned_target.assign(target.substr(0, q));
  if (q == std::string_view::npos) return out;
  for (const core::QueryParam& param : core::QueryParams(target.substr(q + 1))) {
    if (param.name == kSignatureExpiryParam) {
      out.expires.assign(param.value);
    } else if (param.name == kSignatureParam) {
      out.signature.assign(param.value);
    } else {
      core::append_query(out.unsigned_target, param.text);
    }
  }
  return out;
}

std::string canonical_unsigned_target(std::string_view target) {
  return split_signed_target(target).unsigned_target;
}

std::string UrlSigner::mac(const std::string& key, std::string_view unsigned_target,
                           std::string_view expires) const {
  std::string message;
  message.reserve(expires.size() + 1 + unsigned_target.size());
  message.append(expires).append("\n").append(unsigned_target);
  unsigned char digest[kHmacSha256Bytes];
  // Failing (OpenSSL out of memory), no signature: verify() accepts none then.
  if (!hmac_sha256(key, message, digest)) return std::string();
  return base64url(digest, sizeof digest);
}

std::string UrlSigner::sign(std::string_view target, int64_t expires_unix) const {
  std::string expires = std::to_string(expires_unix);
  std::string out = canonical_unsigned_target(target);
  std::string signature = mac(keys_[0], out, expires);
  core::append_query_param(out, kSignatureExpiryParam, expires);
  core::append_query_param(out, kSignatureParam, signature);
  return out;
}

SignatureVerdict UrlSigner::verify(std::string_view target, int64_t now_unix,
                                   std::string* unsigned_target) const {
  SplitTarget split = split_signed_target(target);
  if (split.expires.empty() && split.signature.empty()) return SignatureVerdict::missing;
  int64_t expires = 0;
  auto [end, ec] =
      std::from_chars(split.expires.data(), split.expires.data() + split.expires.size(), expires);
  if (ec != std::errc() || end != split.expires.data() + split.expires.size() ||
      split.signature.empty()) {
    return SignatureVerdict::malformed;
  }
  bool match = false;
  for (const auto& key : keys_) {
    std::string expected = mac(key, split.unsigned_target, split.expires);
    // Constant-time: never reveal how many leading characters matched.
    if (!expected.empty() && expected.size() == split.signature.size() &&
        CRYPTO_memcmp(expected.data(), split.signature.data(), expected.size()) == 0) {
      match = true;
    }
  }
  if (!match) return SignatureVerdict::bad_signature;
  if (expires < now_unix) return SignatureVerdict::expired;
  if (unsigned_target != nullptr) *unsigned_target = std::move(split.unsigned_target);
  return SignatureVerdict::ok;
}

}  // namespace signing
