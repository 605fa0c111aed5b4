#include "api/password.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <charconv>
#include <vector>

#include "api/token.h"

namespace api {

namespace {

constexpr std::string_view kScheme = "pbkdf2-sha256";
constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;

bool derive(std::string_view password, std::string_view salt, int iterations, unsigned char* out) {
  return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                           reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                           iterations, EVP_sha256(), static_cast<int>(kHashBytes), out) == 1;
}

struct Parsed {
  int iterations = 0;
  std::string salt;
  std::string hash;
};

std::optional<Parsed> parse(std::string_view stored) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t d = stored.find('$', start);
    parts.push_back(stored.substr(start, d == std::string_view::npos ? std::string_view::npos : d - start));
    if (d == std::string_view::npos) break;
    start = d + 1;
  }
  if (parts.size() != 4 || parts[0] != kScheme) return std::nullopt;
  Parsed p;
  auto [end, ec] = std::from_chars(parts[1].data(), parts[1].data() + parts[1].size(), p.iterations);
  if (ec != std::errc() || end != parts[1].data() + parts[1].size()) return std::nullopt;
  if (p.iterations < 1 || p.iterations > kMaxIterations) return std::nullopt;
  auto salt = base64url_decode(parts[2]);
  auto hash = base64url_decode(parts[3]);
  if (!salt || !hash || salt->empty() || hash->size() != kHashBytes) return std::nullopt;
  p.salt = std::move(*salt);
  p.hash = std::move(*hash);
  return p;
}

}  // namespace

common::Result<std::string> hash_password(std::string_view password, int iterations) {
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof salt) != 1) return common::Error{"kdf_error", "the random source failed"};
  std::string_view salt_view(reinterpret_cast<const char*>(salt), sizeof salt);
  unsigned char hash[kHashBytes];
  if (!derive(password, salt_view, iterations, hash)) return common::Error{"kdf_error", "PBKDF2 failed"};
  return std::string(kScheme) + "$" + std::to_string(iterations) + "$" + base64url_encode(salt_view) + "$" +
         base64url_encode(std::string_view(reinterpret_cast<const char*>(hash), sizeof hash));
}

bool verify_password(std::string_view password, std::string_view stored) {
  auto p = parse(stored);
  if (!p) return false;
  unsigned char hash[kHashBytes];
  if (!derive(password, p->salt, p->iterations, hash)) return false;
  return CRYPTO_memcmp(hash, p->hash.data(), kHashBytes) == 0;
}

int stored_iterations(std::string_view stored) {
  auto p = parse(stored);
  return p ? p->iterations : 0;
}

bool verify_dummy(std::string_view password, int iterations) {
  static const std::string kSalt(kSaltBytes, '\x5a');
  unsigned char hash[kHashBytes];
  (void)derive(password, kSalt, iterations, hash);
  return false;
}

}  // namespace api
