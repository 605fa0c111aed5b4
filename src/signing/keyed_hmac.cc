#include "signing/keyed_hmac.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <memory>
#include <string>
#include <vector>

namespace signing {
namespace {

struct MacDeleter {
  void operator()(EVP_MAC* mac) const { EVP_MAC_free(mac); }
};
struct MacContextDeleter {
  void operator()(EVP_MAC_CTX* context) const { EVP_MAC_CTX_free(context); }
};
using MacContext = std::unique_ptr<EVP_MAC_CTX, MacContextDeleter>;

// A thread's keyed contexts. Keys change only with the configuration, so a handful is
// plenty; past that the oldest goes (a key reloaded away is never asked for again).
constexpr size_t kContextsPerThread = 8;

class KeyedContexts {
 public:
  EVP_MAC_CTX* for_key(std::string_view key) {
    for (auto& entry : entries_) {
      if (entry.key == key) return entry.context.get();
    }
    static const std::unique_ptr<EVP_MAC, MacDeleter> hmac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    if (!hmac) return nullptr;
    MacContext context(EVP_MAC_CTX_new(hmac.get()));
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_construct_end()};
    if (!context || EVP_MAC_init(context.get(), reinterpret_cast<const unsigned char*>(key.data()),
                                 key.size(), params) != 1)
      return nullptr;
    if (entries_.size() == kContextsPerThread) entries_.erase(entries_.begin());
    entries_.push_back({std::string(key), std::move(context)});
    return entries_.back().context.get();
  }

 private:
  struct Entry {
    std::string key;
    MacContext context;
  };
  std::vector<Entry> entries_;
};

}  // namespace

bool hmac_sha256(std::string_view key, std::string_view message,
                 unsigned char (&out)[kHmacSha256Bytes]) {
  thread_local KeyedContexts contexts;
  EVP_MAC_CTX* context = contexts.for_key(key);
  size_t written = 0;
  // Initialised again without a key: the one it was given stays.
  return context != nullptr && EVP_MAC_init(context, nullptr, 0, nullptr) == 1 &&
         EVP_MAC_update(context, reinterpret_cast<const unsigned char*>(message.data()),
                        message.size()) == 1 &&
         EVP_MAC_final(context, out, &written, kHmacSha256Bytes) == 1 &&
         written == kHmacSha256Bytes;
}

}  // namespace signing
