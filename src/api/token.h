// Session tokens: 256 bits from the CSPRNG (RAND_bytes), given to the client as
// base64url (43 characters, no padding) and stored only as their SHA-256 hash.
// Pure functions; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace api {

inline constexpr size_t kTokenBytes = 32;
inline constexpr size_t kTokenChars = 43;

// A fresh token (base64url), or nullopt if the CSPRNG fails.
std::optional<std::string> new_token();
// The 32-byte SHA-256 of a token as given by the client (raw bytes).
std::string token_hash(std::string_view token);
// True when `token` looks like one of ours (length and alphabet); anything else
// is refused without a store lookup.
bool well_formed_token(std::string_view token);
// Constant-time equality of two hashes (CRYPTO_memcmp); false on size mismatch.
bool hashes_equal(std::string_view a, std::string_view b);

// base64url without padding (RFC 4648 §5): signing::base64url_encode/_decode.
std::string base64url_encode(std::string_view bytes);
// nullopt on characters outside the alphabet, an impossible length or a
// non-canonical last character.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace api
