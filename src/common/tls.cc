#include "common/tls.h"

#include <openssl/err.h>

#include <cstring>
#include <utility>

namespace common {
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
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void* arg) {
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

}  // namespace

Result<SslCtxPtr> build_server_tls_context(const TlsOptions& options) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return Error{"tls_config", "cannot create a TLS context: " + openssl_reason()};
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  // TLS 1.2: ECDHE key exchange with AEAD ciphers only (TLS 1.3's suites are all such).
  if (SSL_CTX_set_cipher_list(c, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
    return Error{"tls_config", "cannot set the TLS 1.2 ciphers: " + openssl_reason()};
  }
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(c, options.certificate.c_str()) != 1) {
    return Error{"tls_config", "cannot load the certificate " + options.certificate + ": " + openssl_reason()};
  }
  if (SSL_CTX_use_PrivateKey_file(c, options.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    return Error{"tls_config", "cannot load the private key " + options.key + ": " + openssl_reason()};
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    return Error{"tls_config",
                 "the private key " + options.key + " does not match the certificate " + options.certificate};
  }
  SSL_CTX_set_alpn_select_cb(c, select_alpn, options.http2 ? c : nullptr);
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

}  // namespace common
