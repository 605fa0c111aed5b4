// Self-signed certificates for TLS tests, made with OpenSSL in the test itself
// (no openssl command line needed): an EC P-256 key and a certificate for
// localhost / 127.0.0.1, each certificate its own CA. Also which certificate a
// server really presents, read from a real handshake.
#pragma once

#include <chrono>
#include <string>

namespace balancer::test {

// Writes the certificate and key as PEM files; `common_name` tells two apart.
// Returns false (and says why in `error`) when OpenSSL fails.
bool write_self_signed_certificate(const std::string& cert_path, const std::string& key_path,
                                   const std::string& common_name, std::string* error = nullptr);

// The SHA-256 fingerprint (lowercase hex) of the first certificate in the PEM
// file `cert_path`, or "" when it does not load.
std::string certificate_fingerprint(const std::string& cert_path);

// What a TLS server on 127.0.0.1:`port` presents in one real handshake (the
// client verifies nothing and offers ALPN h2 and http/1.1), then closes.
struct TlsHandshake {
  std::string fingerprint;  // SHA-256 of the server's certificate, lowercase hex; "" on failure
  std::string alpn;         // the protocol the server chose, "" when none
  std::string error;        // why the handshake failed, "" when it succeeded
};
TlsHandshake tls_handshake(int port, std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace balancer::test
