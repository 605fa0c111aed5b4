// Our servers' error replies, the same from the balancer, the API and the cache node: a JSON
// body {"error":{"code":"...","message":"..."}} under an application/json Content-Type.
#pragma once

#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "support/http_client.h"

namespace balancer::test {

inline bool is_json_error(const HttpResponse& r, const std::string& code) {
  return r.header("Content-Type").value_or("").find("application/json") == 0 &&
         r.body.find("{\"error\":{\"code\":\"" + code + "\",\"message\":\"") == 0;
}

// CHECKs that `r` is the error reply `code` with `status`.
inline void check_json_error(const HttpResponse& r, long status, const std::string& code) {
  INFO("expected " << status << " " << code << ", got " << r.status << ": " << r.body);
  CHECK(r.status == status);
  CHECK(is_json_error(r, code));
}

// A request a test expects refused: what varies in it (a target, a body, a query), and the
// status and error code of the reply.
struct Refusal {
  std::string request;
  long status;
  std::string code;
};

// Sends each refusal's request with `send`, in order, and checks its reply.
inline void check_json_refusals(const std::vector<Refusal>& refusals,
                                const std::function<HttpResponse(const std::string&)>& send) {
  for (const Refusal& refusal : refusals) {
    CAPTURE(refusal.request.substr(0, 80));
    check_json_error(send(refusal.request), refusal.status, refusal.code);
  }
}

}  // namespace balancer::test
