// RAII owners of the libevent handles the test fixture programs (test_origin, ll_origin)
// use, and the query parameters of a request. Header-only: the programs do not link the test
// library.
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "support/free_with.h"

namespace balancer::test {

using EventBasePtr = std::unique_ptr<event_base, FreeWith<event_base_free>>;
using EvhttpPtr = std::unique_ptr<evhttp, FreeWith<evhttp_free>>;
using EventPtr = std::unique_ptr<event, FreeWith<event_free>>;
using EvbufferPtr = std::unique_ptr<evbuffer, FreeWith<evbuffer_free>>;
// Everything in `buf`, taken out of it.
inline std::string drain(evbuffer* buf) {
  std::string out(evbuffer_get_length(buf), '\0');
  evbuffer_remove(buf, out.data(), out.size());
  return out;
}

using MallocPtr = std::unique_ptr<char, FreeWith<std::free>>;
using EvhttpUriPtr = std::unique_ptr<evhttp_uri, FreeWith<evhttp_uri_free>>;

// Owns the key/value list filled by evhttp_parse_query_str.
class QueryParams {
 public:
  explicit QueryParams(const char* query) {
    TAILQ_INIT(&list_);
    if (query != nullptr && evhttp_parse_query_str(query, &list_) != 0) valid_ = false;
  }
  ~QueryParams() { evhttp_clear_headers(&list_); }
  QueryParams(const QueryParams&) = delete;
  QueryParams& operator=(const QueryParams&) = delete;

  bool valid() const { return valid_; }
  const char* get(const char* key) const {
    return evhttp_find_header(const_cast<evkeyvalq*>(&list_), key);
  }
  // Every value of a repeated parameter, in order.
  std::vector<std::string> all(std::string_view key) const {
    std::vector<std::string> out;
    const evkeyval* kv = nullptr;
    TAILQ_FOREACH(kv, &list_, next) {
      if (key == kv->key) out.emplace_back(kv->value);
    }
    return out;
  }

 private:
  evkeyvalq list_{};
  bool valid_ = true;
};

}  // namespace balancer::test
