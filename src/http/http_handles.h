// RAII owners for the HTTP library's C handles (libcurl, OpenSSL), built like the
// core's (core/handles.h).
#pragma once

#include <curl/curl.h>
#include <openssl/ssl.h>

#include "core/handles.h"

namespace http {

using CurlEasyPtr = core::CHandle<CURL, curl_easy_cleanup>;
using CurlSlistPtr = core::CHandle<curl_slist, curl_slist_free_all>;
using SslCtxPtr = core::CHandle<SSL_CTX, SSL_CTX_free>;
using SslPtr = core::CHandle<SSL, SSL_free>;

inline void curl_multi_free(CURLM* m) {
  curl_multi_cleanup(m);
}
using CurlMultiPtr = core::CHandle<CURLM, curl_multi_free>;

}  // namespace http
