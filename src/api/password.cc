#include "api/password.h"

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "api/token.h"

namespace api {

namespace {

constexpr std::string_view kPbkdf2Scheme = "pbkdf2-sha256";
constexpr std::string_view kArgon2Prefix = "$argon2id$v=19$";
constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;
// What a stored Argon2id string may carry (RFC 9106 allows more; nothing we wrote does).
constexpr size_t kMinStoredSalt = 8, kMaxStoredSalt = 64;
constexpr size_t kMinStoredHash = 16, kMaxStoredHash = 64;

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t d = text.find(separator, start);
    parts.push_back(
        text.substr(start, d == std::string_view::npos ? std::string_view::npos : d - start));
    if (d == std::string_view::npos) return parts;
    start = d + 1;
  }
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  if (text.empty() || (text.size() > 1 && text[0] == '0')) return false;  // canonical decimal only
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// PHC strings use the standard base64 alphabet without padding; common's codec is base64url,
// which differs only in two characters.
std::string phc_base64(std::string_view bytes) {
  std::string out = base64url_encode(bytes);
  std::replace(out.begin(), out.end(), '-', '+');
  std::replace(out.begin(), out.end(), '_', '/');
  return out;
}
std::optional<std::string> phc_unbase64(std::string_view text) {
  if (text.find_first_of("-_") != std::string_view::npos) return std::nullopt;
  std::string url(text);
  std::replace(url.begin(), url.end(), '+', '-');
  std::replace(url.begin(), url.end(), '/', '_');
  return base64url_decode(url);
}

// ---- PBKDF2 (verification of older hashes)

bool pbkdf2(std::string_view password, std::string_view salt, int iterations, unsigned char* out) {
  return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                           reinterpret_cast<const unsigned char*>(salt.data()),
                           static_cast<int>(salt.size()), iterations, EVP_sha256(),
                           static_cast<int>(kHashBytes), out) == 1;
}

struct Pbkdf2Hash {
  int iterations = 0;
  std::string salt;
  std::string hash;
};

std::optional<Pbkdf2Hash> parse_pbkdf2(std::string_view stored) {
  auto parts = split(stored, '$');
  if (parts.size() != 4 || parts[0] != kPbkdf2Scheme) return std::nullopt;
  Pbkdf2Hash p;
  auto [end, ec] =
      std::from_chars(parts[1].data(), parts[1].data() + parts[1].size(), p.iterations);
  if (ec != std::errc() || end != parts[1].data() + parts[1].size()) return std::nullopt;
  if (p.iterations < 1 || p.iterations > kMaxIterations) return std::nullopt;
  auto salt = base64url_decode(parts[2]);
  auto hash = base64url_decode(parts[3]);
  if (!salt || !hash || salt->empty() || hash->size() != kHashBytes) return std::nullopt;
  p.salt = std::move(*salt);
  p.hash = std::move(*hash);
  return p;
}

// ---- Argon2id

struct Argon2Hash {
  Argon2Params params;
  std::string salt;
  std::string hash;
};

bool params_in_range(const Argon2Params& p) {
  return p.passes >= 1 && p.passes <= kMaxPasses && p.lanes >= 1 && p.lanes <= kMaxLanes &&
         p.memory_kib >= std::max<uint32_t>(8 * p.lanes, 8) && p.memory_kib <= kMaxMemoryKib;
}

// "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>": exactly this order, as libargon2 writes it.
std::optional<Argon2Hash> parse_argon2(std::string_view stored) {
  if (stored.substr(0, kArgon2Prefix.size()) != kArgon2Prefix) return std::nullopt;
  auto parts = split(stored.substr(kArgon2Prefix.size()), '$');
  if (parts.size() != 3) return std::nullopt;
  auto costs = split(parts[0], ',');
  if (costs.size() != 3 || costs[0].substr(0, 2) != "m=" || costs[1].substr(0, 2) != "t=" ||
      costs[2].substr(0, 2) != "p=") {
    return std::nullopt;
  }
  Argon2Hash h;
  if (!parse_number(costs[0].substr(2), h.params.memory_kib) ||
      !parse_number(costs[1].substr(2), h.params.passes) ||
      !parse_number(costs[2].substr(2), h.params.lanes) || !params_in_range(h.params)) {
    return std::nullopt;
  }
  auto salt = phc_unbase64(parts[1]);
  auto hash = phc_unbase64(parts[2]);
  if (!salt || !hash || salt->size() < kMinStoredSalt || salt->size() > kMaxStoredSalt ||
      hash->size() < kMinStoredHash || hash->size() > kMaxStoredHash) {
    return std::nullopt;
  }
  h.salt = std::move(*salt);
  h.hash = std::move(*hash);
  return h;
}

// Each thread keeps its Argon2 memory between checks: allocating and freeing 19 MiB per check
// made the servers' allocator (mimalloc) return the pages and fault them in again, which cost
// four times the hashing itself (90 ms instead of 22 ms per check on the 2-core test machine).
// libargon2 wipes the memory before it hands it back. Blocks above kKeptArenaBytes (only a
// stored hash with an unusual cost asks for that) are allocated for one check.
constexpr size_t kKeptArenaBytes = size_t{64} << 20;
struct Arena {
  std::unique_ptr<uint8_t[]> block;
  size_t bytes = 0;
  bool lent = false;
};
thread_local Arena t_arena;

int lend_memory(uint8_t** memory, size_t bytes) {
  Arena& a = t_arena;
  if (bytes > kKeptArenaBytes || a.lent) {
    *memory = static_cast<uint8_t*>(std::malloc(bytes));
    return *memory != nullptr ? ARGON2_OK : ARGON2_MEMORY_ALLOCATION_ERROR;
  }
  if (a.bytes < bytes) {
    a.block.reset(new (std::nothrow) uint8_t[bytes]);
    a.bytes = a.block ? bytes : 0;
    if (!a.block) return ARGON2_MEMORY_ALLOCATION_ERROR;
  }
  a.lent = true;
  *memory = a.block.get();
  return ARGON2_OK;
}

void take_back_memory(uint8_t* memory, size_t) {
  Arena& a = t_arena;
  if (a.lent && memory == a.block.get()) {
    a.lent = false;
    return;
  }
  std::free(memory);
}

bool argon2id(std::string_view password, std::string_view salt, const Argon2Params& p,
              unsigned char* out, size_t out_len) {
  if (!params_in_range(p)) return false;
  argon2_context ctx{};
  ctx.out = out;
  ctx.outlen = static_cast<uint32_t>(out_len);
  // libargon2 only reads the password and salt (ARGON2_FLAG_CLEAR_PASSWORD is not set).
  ctx.pwd = reinterpret_cast<uint8_t*>(const_cast<char*>(password.data()));
  ctx.pwdlen = static_cast<uint32_t>(password.size());
  ctx.salt = reinterpret_cast<uint8_t*>(const_cast<char*>(salt.data()));
  ctx.saltlen = static_cast<uint32_t>(salt.size());
  ctx.t_cost = p.passes;
  ctx.m_cost = p.memory_kib;
  ctx.lanes = p.lanes;
  ctx.threads = p.lanes;
  ctx.version = ARGON2_VERSION_13;
  ctx.allocate_cbk = lend_memory;
  ctx.free_cbk = take_back_memory;
  ctx.flags = ARGON2_DEFAULT_FLAGS;
  return argon2_ctx(&ctx, Argon2_id) == ARGON2_OK;
}

}  // namespace

core::Result<std::string> hash_password(std::string_view password, const Argon2Params& params) {
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof salt) != 1)
    return core::Error{"kdf_error", "the random source failed"};
  std::string_view salt_view(reinterpret_cast<const char*>(salt), sizeof salt);
  unsigned char hash[kHashBytes];
  if (!argon2id(password, salt_view, params, hash, sizeof hash)) {
    return core::Error{"kdf_error", "Argon2id failed (parameters out of range or out of memory)"};
  }
  std::string out = std::string(kArgon2Prefix) + "m=" + std::to_string(params.memory_kib) +
                    ",t=" + std::to_string(params.passes) + ",p=" + std::to_string(params.lanes) +
                    "$" + phc_base64(salt_view) + "$" +
                    phc_base64(std::string_view(reinterpret_cast<const char*>(hash), sizeof hash));
  OPENSSL_cleanse(hash, sizeof hash);
  return out;
}

core::Result<std::string> hash_password_pbkdf2(std::string_view password, int iterations) {
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof salt) != 1)
    return core::Error{"kdf_error", "the random source failed"};
  std::string_view salt_view(reinterpret_cast<const char*>(salt), sizeof salt);
  unsigned char hash[kHashBytes];
  if (!pbkdf2(password, salt_view, iterations, hash))
    return core::Error{"kdf_error", "PBKDF2 failed"};
  return std::string(kPbkdf2Scheme) + "$" + std::to_string(iterations) + "$" +
         base64url_encode(salt_view) + "$" +
         base64url_encode(std::string_view(reinterpret_cast<const char*>(hash), sizeof hash));
}

bool verify_password(std::string_view password, std::string_view stored) {
  if (auto a = parse_argon2(stored)) {
    unsigned char hash[kMaxStoredHash];
    if (!argon2id(password, a->salt, a->params, hash, a->hash.size())) return false;
    const bool same = CRYPTO_memcmp(hash, a->hash.data(), a->hash.size()) == 0;
    OPENSSL_cleanse(hash, sizeof hash);
    return same;
  }
  if (auto p = parse_pbkdf2(stored)) {
    unsigned char hash[kHashBytes];
    if (!pbkdf2(password, p->salt, p->iterations, hash)) return false;
    return CRYPTO_memcmp(hash, p->hash.data(), kHashBytes) == 0;
  }
  return false;
}

bool needs_rehash(std::string_view stored, const Argon2Params& current) {
  auto a = parse_argon2(stored);
  return !a || !(a->params == current);
}

std::optional<Argon2Params> stored_argon2_params(std::string_view stored) {
  auto a = parse_argon2(stored);
  if (!a) return std::nullopt;
  return a->params;
}

int stored_iterations(std::string_view stored) {
  auto p = parse_pbkdf2(stored);
  return p ? p->iterations : 0;
}

bool verify_dummy(std::string_view password, const Argon2Params& params) {
  static const std::string kSalt(kSaltBytes, '\x5a');
  unsigned char hash[kHashBytes];
  (void)argon2id(password, kSalt, params, hash, sizeof hash);
  return false;
}

}  // namespace api
