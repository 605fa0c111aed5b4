// RAII owners for libevent's core handles: each constructor has one matching free function,
// so an owner is a unique_ptr with that function as deleter. The HTTP library's owners
// (libcurl, OpenSSL) are in http/http_handles.h.
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>

#include <memory>

namespace core {

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
using EvbufferPtr = CHandle<evbuffer, evbuffer_free>;

}  // namespace core
