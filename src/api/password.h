// Password hashing for accounts: PBKDF2-HMAC-SHA256 (OpenSSL) with a random
// 16-byte salt, stored as one self-describing string
//   pbkdf2-sha256$<iterations>$<salt, base64url>$<hash, base64url>
// so the iteration count can rise later while old hashes still verify.
// Passwords are never logged. Pure functions; any thread (they are slow by
// design: call them off the event loops).
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace api {

// Production floor and default (OWASP 2023 for PBKDF2-HMAC-SHA256).
inline constexpr int kMinProductionIterations = 600'000;
// The lowest count any config may ask for (only with api.kdf_allow_weak_for_tests).
inline constexpr int kMinTestIterations = 1'000;
// Stored hashes above this are refused (a corrupt record must not pin a worker).
inline constexpr int kMaxIterations = 10'000'000;
inline constexpr size_t kMaxPasswordBytes = 1024;

// A fresh salted hash of `password`. Fails ("kdf_error") only if OpenSSL does.
common::Result<std::string> hash_password(std::string_view password, int iterations);

// True when `password` matches `stored` (constant-time comparison of the hashes).
// A malformed stored string never matches.
bool verify_password(std::string_view password, std::string_view stored);

// The iteration count of a stored hash, or 0 when the string is malformed.
int stored_iterations(std::string_view stored);

// Spends the time of one verification at `iterations` and returns false: used
// for unknown logins so that timing does not tell which logins exist.
bool verify_dummy(std::string_view password, int iterations);

}  // namespace api
