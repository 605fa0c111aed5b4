#include "http/tls/tls.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <memory>
#include <utility>

#include "http/tls/tls_tickets.h"

namespace http {
namespace {

std::string openssl_reason() {
  unsigned long code = ERR_get_error();
  // Later queued errors only repeat the first one's context.
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

// ALPN: h2 when this server speaks it and the client offers it, else http/1.1.
// A client that offers neither gets no ALPN answer and speaks HTTP/1.1.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg) {
  const bool http2 = arg != nullptr;
  static const unsigned char kH2[] = {'h', '2'};
  static const unsigned char kHttp11[] = {'h', 't', 't', 'p', '/', '1', '.', '1'};
  const unsigned char* fallback = nullptr;
  for (unsigned int i = 0; i < inlen;) {
    unsigned int n = in[i];
    if (i + 1 + n > inlen) break;
    const unsigned char* proto = in + i + 1;
    if (http2 && n == sizeof kH2 && memcmp(proto, kH2, n) == 0) {
      *out = proto;
      *outlen = static_cast<unsigned char>(n);
      return SSL_TLSEXT_ERR_OK;
    }
    if (n == sizeof kHttp11 && memcmp(proto, kHttp11, n) == 0) fallback = proto;
    i += 1 + n;
  }
  if (fallback == nullptr) return SSL_TLSEXT_ERR_NOACK;
  *out = fallback;
  *outlen = sizeof kHttp11;
  return SSL_TLSEXT_ERR_OK;
}

// What a context's ticket callback seals and opens tickets with.
struct TicketSecret {
  TicketSecret(std::string secret, int64_t rotation)
      : keys(std::move(secret)), rotation_s(rotation) {}
  TicketKeys keys;
  int64_t rotation_s;
};

// The context owns its TicketSecret (freed with it).
int ticket_secret_index() {
  static const int index = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<TicketSecret*>(ptr);
      });
  return index;
}

// Without a configured file: one random secret for the life of the process, so tickets
// still open after a certificate reload (a new context).
const std::string& process_ticket_secret() {
  static const std::string secret = [] {
    std::string s(48, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(s.size())) != 1)
      s.clear();
    return s;
  }();
  return secret;
}

bool use_ticket_key(const TicketKey& key, const unsigned char* iv, EVP_CIPHER_CTX* cipher,
                    EVP_MAC_CTX* mac, bool seal) {
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
                                        const_cast<unsigned char*>(key.mac.data()), key.mac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return false;
  return seal ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes.data(), iv) == 1
              : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes.data(), iv) == 1;
}

// OpenSSL's ticket key callback: seal with this window's key; open with this window's
// (1), the one before or after (2: open, and issue a fresh ticket), or refuse (0: a full
// handshake).
int ticket_key_callback(SSL* ssl, unsigned char* key_name, unsigned char* iv,
                        EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int seal) {
  const auto* secret = static_cast<const TicketSecret*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticket_secret_index()));
  if (secret == nullptr || secret->keys.empty()) return seal ? -1 : 0;
  const int64_t now = ticket_window(static_cast<int64_t>(std::time(nullptr)), secret->rotation_s);
  if (seal) {
    const TicketKey key = secret->keys.for_window(now);
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1) return -1;
    memcpy(key_name, key.name.data(), key.name.size());
    return use_ticket_key(key, iv, cipher, mac, true) ? 1 : -1;
  }
  for (const int64_t window : {now, now - 1, now + 1}) {
    const TicketKey key = secret->keys.for_window(window);
    if (CRYPTO_memcmp(key_name, key.name.data(), key.name.size()) != 0) continue;
    if (!use_ticket_key(key, iv, cipher, mac, false)) return -1;
    // 2 (a new ticket sealed) when the key is an older window's, and always in TLS 1.3: a
    // client uses each TLS 1.3 ticket once (RFC 8446 C.4; OpenSSL's and BoringSSL's clients
    // do), and a resumption answered without a new one left it nothing for its next
    // connection, a full handshake every other time (OpenSSL does the same with its own keys).
    return window == now && SSL_version(ssl) != TLS1_3_VERSION ? 1 : 2;
  }
  return 0;
}

core::Result<std::string> read_ticket_secret(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return core::Error{"tls_config", "cannot read the ticket key file " + file};
  std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (secret.size() < kTicketSecretMinBytes || secret.size() > kTicketSecretMaxBytes) {
    return core::Error{"tls_config", "the ticket key file " + file + " must hold " +
                                         std::to_string(kTicketSecretMinBytes) + " to " +
                                         std::to_string(kTicketSecretMaxBytes) +
                                         " bytes of secret (e.g. openssl rand 48 > FILE)"};
  }
  return secret;
}

}  // namespace

core::Status check_ticket_key_file(const std::string& file) {
  auto read = read_ticket_secret(file);
  if (!read) return read.error();
  return {};
}

core::Result<SslCtxPtr> build_server_tls_context(const TlsOptions& options) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return core::Error{"tls_config", "cannot create a TLS context: " + openssl_reason()};
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  // TLS 1.2: ECDHE key exchange with AEAD ciphers only (TLS 1.3's suites are all such).
  if (SSL_CTX_set_cipher_list(c, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
    return core::Error{"tls_config", "cannot set the TLS 1.2 ciphers: " + openssl_reason()};
  }
  SSL_CTX_set_options(
      c, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  // No chain built from the trust store at each full handshake when the file holds none: the
  // chain sent is the file's (a lookup and a failing verification per handshake otherwise).
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
  if (SSL_CTX_use_certificate_chain_file(c, options.certificate.c_str()) != 1) {
    return core::Error{"tls_config", "cannot load the certificate " + options.certificate + ": " +
                                         openssl_reason()};
  }
  if (SSL_CTX_use_PrivateKey_file(c, options.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    return core::Error{"tls_config",
                       "cannot load the private key " + options.key + ": " + openssl_reason()};
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    return core::Error{"tls_config", "the private key " + options.key +
                                         " does not match the certificate " + options.certificate};
  }
  SSL_CTX_set_alpn_select_cb(c, select_alpn, options.http2 ? c : nullptr);
  // Resumption: tickets sealed with keys the fleet shares (or this process's own).
  std::string secret_bytes = process_ticket_secret();
  if (!options.ticket_key_file.empty()) {
    auto read = read_ticket_secret(options.ticket_key_file);
    if (!read) return read.error();
    secret_bytes = std::move(read).value();
  }
  auto secret = std::make_unique<TicketSecret>(std::move(secret_bytes),
                                               std::max<int64_t>(1, options.ticket_rotation_s));
  if (SSL_CTX_set_ex_data(c, ticket_secret_index(), secret.get()) != 1) {
    return core::Error{"tls_config", "cannot keep the ticket keys: " + openssl_reason()};
  }
  secret.release();  // the context frees it (ticket_secret_index)
  SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ticket_key_callback);
  // A ticket is opened for up to two windows: its stated lifetime is one.
  SSL_CTX_set_timeout(c, static_cast<long>(std::max<int64_t>(1, options.ticket_rotation_s)));
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
  return ctx;
}

SSL* TlsContext::new_connection() const {
  std::lock_guard lock(mutex_);
  return SSL_new(ctx_.get());
}

void TlsContext::install(SslCtxPtr fresh) {
  SslCtxPtr old;
  {
    std::lock_guard lock(mutex_);
    old = std::exchange(ctx_, std::move(fresh));
  }
  // `old` is freed here, outside the lock; connections made with it hold their own references.
}

std::string negotiated_protocol(const SSL* ssl) {
  const unsigned char* proto = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl, &proto, &len);
  return proto != nullptr ? std::string(reinterpret_cast<const char*>(proto), len) : std::string();
}

}  // namespace http
