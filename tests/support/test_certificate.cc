#include "support/test_certificate.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>

namespace balancer::test {
namespace {

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    if (p != nullptr) Free(p);
  }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, Deleter<X509_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;

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
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), static_cast<long>(std::hash<std::string>{}(common_name) & 0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7L * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
                            std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
    ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    if (!ext || X509_add_ext(cert.get(), ext.get(), -1) != 1) return fail("adding an extension failed");
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

}  // namespace balancer::test
