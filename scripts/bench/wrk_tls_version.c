// wrk's TLS connections held to one protocol version, for comparing servers at the same one:
// wrk offers its library's newest, and a server that does not enable TLS 1.3 (nginx before
// 1.23.4 by default) is then measured at TLS 1.2 while ours answer at TLS 1.3, where even a
// resumed handshake does a key exchange. Loaded with LD_PRELOAD; WRK_TLS_VERSION=1.2 or 1.3.
// Built by tls_handshake_bench.sh.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

typedef SSL_CTX* (*ContextNewFn)(const SSL_METHOD*);

SSL_CTX* SSL_CTX_new(const SSL_METHOD* method) {
  static ContextNewFn real_new;
  if (real_new == NULL) real_new = (ContextNewFn)dlsym(RTLD_NEXT, "SSL_CTX_new");
  SSL_CTX* context = real_new(method);
  const char* wanted = getenv("WRK_TLS_VERSION");
  if (context != NULL && wanted != NULL) {
    const int version = strcmp(wanted, "1.2") == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;
    SSL_CTX_set_min_proto_version(context, version);
    SSL_CTX_set_max_proto_version(context, version);
  }
  return context;
}
