// Self-signed certificates for TLS tests, made with OpenSSL in the test itself
// (no openssl command line needed): an EC P-256 key and a certificate for
// localhost / 127.0.0.1, each certificate its own CA. Also which certificate a
// server really presents, read from a real handshake.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace balancer::test {

// Writes the certificate and key as PEM files; `common_name` tells two apart.
// Returns false (and says why in `error`) when OpenSSL fails.
bool write_self_signed_certificate(const std::string& cert_path, const std::string& key_path,
                                   const std::string& common_name, std::string* error = nullptr);

// A self-signed pair written as `<dir>/cert.pem` and `<dir>/key.pem`, `dir` made when missing
// (the test fails when OpenSSL does), and the --set keys that give a server a TLS port (an
// ephemeral one) with it.
struct TestTlsFiles {
  explicit TestTlsFiles(const std::string& dir, const std::string& common_name = "localhost")
      : cert(dir + "/cert.pem"), key(dir + "/key.pem") {
    std::filesystem::create_directories(dir);
    std::string error;
    REQUIRE_MESSAGE(write_self_signed_certificate(cert, key, common_name, &error), error);
  }
  std::vector<std::string> overrides() const {
    return {"listen.tls.enabled=true", "listen.tls.port=0", "listen.tls.certificate=" + cert,
            "listen.tls.key=" + key};
  }
  std::string cert, key;
};

// The SHA-256 fingerprint (lowercase hex) of the first certificate in the PEM
// file `cert_path`, or "" when it does not load.
std::string certificate_fingerprint(const std::string& cert_path);

// Two self-signed pairs, common names "first" and "second", under `<dir>/first/` and
// `<dir>/second/`, and their fingerprints (the test fails unless they differ): for tests that
// move a server from one certificate to the other.
struct TestTlsFilePair {
  explicit TestTlsFilePair(const std::string& dir)
      : first(dir + "/first", "first"),
        second(dir + "/second", "second"),
        first_fingerprint(certificate_fingerprint(first.cert)),
        second_fingerprint(certificate_fingerprint(second.cert)) {
    REQUIRE(!first_fingerprint.empty());
    REQUIRE(!second_fingerprint.empty());
    REQUIRE(first_fingerprint != second_fingerprint);
  }
  TestTlsFiles first, second;
  std::string first_fingerprint, second_fingerprint;
};

// What a TLS server on 127.0.0.1:`port` presents in one real handshake (the
// client verifies nothing and offers ALPN h2 and http/1.1), then closes.
struct TlsHandshake {
  std::string fingerprint;  // SHA-256 of the server's certificate, lowercase hex; "" on failure
  std::string alpn;         // the protocol the server chose, "" when none
  std::string error;        // why the handshake failed, "" when it succeeded
};
TlsHandshake tls_handshake(int port, std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace balancer::test
