// Internal to the test_support library: RAII owners for libcurl handles, and the setup that
// the one-request client and the herd share.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>

#include "support/free_with.h"
#include "support/http_client.h"

namespace balancer::test::curl {

using EasyPtr = std::unique_ptr<CURL, FreeWith<curl_easy_cleanup>>;
using MultiPtr = std::unique_ptr<CURLM, FreeWith<curl_multi_cleanup>>;
using SlistPtr = std::unique_ptr<curl_slist, FreeWith<curl_slist_free_all>>;

// A new handle, after curl_global_init (once per process, thread-safe). Null when libcurl is
// not usable, with the call that failed named in `error`.
EasyPtr new_easy(std::string& error);
MultiPtr new_multi(std::string& error);

// The request's header lines: "Expect:" (no 100-continue round trip) and then `headers`, an
// empty value spelled "Name;" as curl wants it. Null, with `error` set, when curl could not
// allocate.
SlistPtr request_headers(const HttpHeaders& headers, std::string& error);

}  // namespace balancer::test::curl
