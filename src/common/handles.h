// RAII owners for the C handles we use: each constructor has one matching free
// function, so an owner is a unique_ptr with that function as deleter.
#pragma once

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include <memory>

namespace common {

template <auto FreeFn>
struct CFree {
  template <class T>
  void operator()(T* p) const {
    if (p != nullptr) FreeFn(p);
  }
};

template <class T, auto FreeFn>
using CHandle = std::unique_ptr<T, CFree<FreeFn>>;

using EventBasePtr = CHandle<event_base, event_base_free>;
using EventPtr = CHandle<event, event_free>;
using EvhttpPtr = CHandle<evhttp, evhttp_free>;
using EvbufferPtr = CHandle<evbuffer, evbuffer_free>;
using CurlEasyPtr = CHandle<CURL, curl_easy_cleanup>;
using CurlSlistPtr = CHandle<curl_slist, curl_slist_free_all>;
using SslCtxPtr = CHandle<SSL_CTX, SSL_CTX_free>;

inline void curl_multi_free(CURLM* m) {
  curl_multi_cleanup(m);
}
using CurlMultiPtr = CHandle<CURLM, curl_multi_free>;

}  // namespace common
