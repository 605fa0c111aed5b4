// Internal to the test_support library: RAII owners for libcurl handles.
#pragma once

#include <curl/curl.h>

#include <memory>

namespace balancer::test::curl {

struct EasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct MultiDeleter {
  void operator()(CURLM* h) const { curl_multi_cleanup(h); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;
using MultiPtr = std::unique_ptr<CURLM, MultiDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

// curl_global_init once per process (thread-safe); true when libcurl is usable.
bool global_init();

// Appends "Name: value" to the list; returns false when curl could not allocate.
bool append_header(SlistPtr& list, const char* line);

}  // namespace balancer::test::curl
