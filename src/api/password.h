// Password hashing for accounts. New hashes are Argon2id (RFC 9106, Debian's libargon2)
// in the standard PHC string
//   $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt, base64>$<hash, base64>
// (base64 without padding), with a 16-byte salt from the CSPRNG and a 32-byte hash compared
// in constant time. Hashes made before Argon2id,
//   pbkdf2-sha256$<iterations>$<salt, base64url>$<hash, base64url>
// still verify; needs_rehash() says when a stored hash should be replaced after a successful
// sign-in (another scheme or other parameters than the configured ones).
// Passwords are never logged. Pure functions; any thread (they are slow by design: call them
// off the event loops).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace api {

// Argon2id cost. OWASP's minimum (m = 19 MiB, t = 2, p = 1) is the production floor and default.
struct Argon2Params {
  uint32_t memory_kib = 19'456;  // m
  uint32_t passes = 2;           // t
  uint32_t lanes = 1;            // p (new hashes always use 1: the pool runs checks side by side)
  bool operator==(const Argon2Params&) const = default;
};
inline constexpr uint32_t kMinProductionMemoryKib = 19'456;
inline constexpr uint32_t kMinProductionPasses = 2;
// The lowest costs any config may ask for (only with api.kdf_allow_weak_for_tests).
inline constexpr uint32_t kMinTestMemoryKib = 64;
inline constexpr uint32_t kMinTestPasses = 1;
// Stored or configured costs above these are refused (a corrupt record must neither pin a
// worker nor allocate gigabytes).
inline constexpr uint32_t kMaxMemoryKib = 1u << 20;  // 1 GiB
inline constexpr uint32_t kMaxPasses = 64;
inline constexpr uint32_t kMaxLanes = 16;

// PBKDF2 (hashes made before Argon2id): stored counts above this are refused.
inline constexpr int kMaxIterations = 10'000'000;
inline constexpr size_t kMaxPasswordBytes = 1024;

// A fresh salted Argon2id hash of `password` (PHC string). Fails ("kdf_error") if the random
// source or libargon2 does (out of memory).
core::Result<std::string> hash_password(std::string_view password, const Argon2Params& params);

// A PBKDF2-HMAC-SHA256 hash in the pre-Argon2id format: only to make such hashes for tests and
// benchmarks (the server never writes one).
core::Result<std::string> hash_password_pbkdf2(std::string_view password, int iterations);

// True when `password` matches `stored` (either scheme; constant-time comparison of the
// hashes). A malformed stored string never matches.
bool verify_password(std::string_view password, std::string_view stored);

// True when `stored` should be replaced by a hash at `current` after a successful check: it is
// not Argon2id, or its parameters differ from `current` (so raising or lowering the configured
// cost reaches every account that signs in).
bool needs_rehash(std::string_view stored, const Argon2Params& current);

// The Argon2id parameters of a stored hash; nullopt for another scheme or a malformed string.
std::optional<Argon2Params> stored_argon2_params(std::string_view stored);
// The iteration count of a stored PBKDF2 hash, or 0 for another scheme or a malformed string.
int stored_iterations(std::string_view stored);

// Spends the time of one Argon2id check at `params` and returns false: used for unknown logins
// so that timing does not tell which logins exist.
bool verify_dummy(std::string_view password, const Argon2Params& params);

}  // namespace api
