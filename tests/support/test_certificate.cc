#include "support/test_certificate.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <unistd.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "support/free_with.h"
#include "support/sockets.h"

namespace balancer::test {
namespace {

using KeyPtr = std::unique_ptr<EVP_PKEY, FreeWith<EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, FreeWith<X509_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, FreeWith<X509_EXTENSION_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, FreeWith<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, FreeWith<SSL_free>>;

std::string hex_sha256(X509* cert) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &size) != 1) return "";
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

bool write_pem(const std::string& path, const std::function<int(FILE*)>& write) {
  FILE* f = fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  bool ok = write(f) == 1;
  return fclose(f) == 0 && ok;
}

}  // namespace

bool write_self_signed_certificate(const std::string& cert_path, const std::string& key_path,
                                   const std::string& common_name, std::string* error) {
  auto fail = [&](const char* what) {
    if (error != nullptr) *error = what;
    return false;
  };
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return fail("EVP_EC_gen failed");
  CertPtr cert(X509_new());
  if (!cert) return fail("X509_new failed");
  X509_set_version(cert.get(), 2);
  // A distinct serial per name: a client pinned to one certificate refuses the other.
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()),
                   static_cast<long>(std::hash<std::string>{}(common_name)&0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7L * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
                            std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
    ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    if (!ext || X509_add_ext(cert.get(), ext.get(), -1) != 1)
      return fail("adding an extension failed");
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return fail("X509_sign failed");
  if (!write_pem(key_path, [&](FILE* f) {
        return PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
      })) {
    return fail("cannot write the key file");
  }
  if (!write_pem(cert_path, [&](FILE* f) { return PEM_write_X509(f, cert.get()); })) {
    return fail("cannot write the certificate file");
  }
  return true;
}

std::string certificate_fingerprint(const std::string& cert_path) {
  FILE* f = fopen(cert_path.c_str(), "r");
  if (f == nullptr) return "";
  CertPtr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  fclose(f);
  return cert ? hex_sha256(cert.get()) : "";
}

TlsHandshake tls_handshake(int port, std::chrono::milliseconds timeout) {
  TlsHandshake out;
  auto fail = [&](const std::string& what) {
    char reason[256] = "";
    ERR_error_string_n(ERR_get_error(), reason, sizeof reason);
    ERR_clear_error();
    out.error = what + ": " + reason;
    return out;
  };
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return fail("SSL_CTX_new");
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE,
                     nullptr);  // the test compares fingerprints instead
  static const unsigned char kAlpn[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof kAlpn);
  // The receive timeout bounds every read of the handshake.
  int fd = connect_loopback(port, timeout);
  if (fd < 0) {
    out.error = "cannot connect to port " + std::to_string(port);
    return out;
  }
  SslPtr ssl(SSL_new(ctx.get()));
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) {
    close(fd);
    return fail("SSL_new");
  }
  SSL_set_tlsext_host_name(ssl.get(), "localhost");
  if (SSL_connect(ssl.get()) != 1) {
    close(fd);
    return fail("handshake");
  }
  CertPtr cert(SSL_get1_peer_certificate(ssl.get()));
  if (cert) out.fingerprint = hex_sha256(cert.get());
  const unsigned char* proto = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl.get(), &proto, &len);
  if (proto != nullptr) out.alpn.assign(reinterpret_cast<const char*>(proto), len);
  // No close_notify: writing to a server that may already have closed would raise SIGPIPE here.
  ssl.reset();
  close(fd);
  if (!cert) out.error = "the server presented no certificate";
  return out;
}

}  // namespace balancer::test
