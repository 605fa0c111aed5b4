// Self-signed certificates for TLS tests, made with OpenSSL in the test itself
// (no openssl command line needed): an EC P-256 key and a certificate for
// localhost / 127.0.0.1, each certificate its own CA.
#pragma once

#include <string>

namespace balancer::test {

// Writes the certificate and key as PEM files; `common_name` tells two apart.
// Returns false (and says why in `error`) when OpenSSL fails.
bool write_self_signed_certificate(const std::string& cert_path, const std::string& key_path,
                                   const std::string& common_name, std::string* error = nullptr);

}  // namespace balancer::test
