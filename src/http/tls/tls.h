// TLS for the HTTP servers: the certificate and key from config, TLS 1.2 and
// 1.3 only with forward-secret AEAD ciphers, ALPN (h2 when the server speaks
// HTTP/2, else http/1.1), and the SSL_CTX swapped on reload without touching
// connections already open (each SSL object holds its own reference).
#pragma once

#include <openssl/ssl.h>

#include <mutex>
#include <string>

#include "core/result.h"
#include "http/http_handles.h"

namespace http {

struct TlsOptions {
  bool enabled = false;
  uint16_t port = 0;        // 0 = ephemeral; HttpServer::tls_port() tells the real one
  std::string certificate;  // PEM file: the certificate, then any intermediates
  std::string key;          // PEM file: the private key
  bool http2 = false;       // offer h2 in ALPN (servers with an HTTP/2 front end)
  // Session tickets (tls_tickets.h): sealed with keys from this file's secret, shared by
  // the servers given the same file; empty: a secret of this process's own (resumption on
  // this server only). A new key every ticket_rotation_s; a ticket lives at most two.
  std::string ticket_key_file;
  int64_t ticket_rotation_s = 3600;
};

// Builds a server SSL_CTX from the files; fails with code "tls_config" naming
// the file and OpenSSL's reason (unreadable, not PEM, key does not match, a ticket
// secret shorter than 32 bytes). Session resumption is on: TLS 1.3 and 1.2 tickets
// (keys above), and TLS 1.2 session IDs cached per context. Secrets are never logged.
core::Result<SslCtxPtr> build_server_tls_context(const TlsOptions& options);

// Whether `file` holds a usable ticket secret (readable, 32 to 4096 bytes); the error names
// the file, never its contents.
core::Status check_ticket_key_file(const std::string& file);

// The SSL_CTX new connections are accepted with. Any thread.
class TlsContext {
 public:
  explicit TlsContext(SslCtxPtr ctx) : ctx_(std::move(ctx)) {}
  // A new server-side SSL object for one connection (owned by the caller), or
  // null when OpenSSL cannot allocate one.
  SSL* new_connection() const;
  // Serves new connections with `fresh` (built and checked beforehand by
  // build_server_tls_context); open connections keep the context they started
  // with. Cannot fail: reload does every fallible step before it swaps.
  void install(SslCtxPtr fresh);

 private:
  mutable std::mutex mutex_;
  SslCtxPtr ctx_;
};

// The ALPN protocol a finished handshake agreed on ("h2", "http/1.1"), or empty.
std::string negotiated_protocol(const SSL* ssl);

}  // namespace http
