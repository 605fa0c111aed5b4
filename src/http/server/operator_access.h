// Who may use a server's operator endpoints (the balancer's overload switch and
// /admin/status, a cache node's /playback): one rule for both servers. A key that is presented
// (the X-Operator-Key header, else the `key` query parameter) must match the configured one,
// compared in constant time whatever its length, even from loopback; without a key, loopback
// clients (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104) pass when the server allows them. Pure; any
// thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/config.h"

namespace http {

class HttpExchange;

// `configured_key` "" disables key access.
struct OperatorPolicy {
  std::string_view configured_key;
  bool allow_loopback = true;
};

struct OperatorVerdict {
  bool allowed = false;
  std::string via;      // allowed: "operator key" or "loopback"
  int status = 0;       // !allowed: 401 or 403
  std::string code;     // !allowed: operator_key_required (401) or operator_key_invalid (403)
  std::string message;  // !allowed: the error's sentence
};

OperatorVerdict check_operator(const OperatorPolicy& policy,
                               const std::optional<std::string>& presented_key,
                               std::string_view remote_ip);

// The key a request presents: its X-Operator-Key header, else its `key` query parameter.
std::optional<std::string> presented_operator_key(const HttpExchange& ex);

bool is_loopback_address(std::string_view ip);

// The config's `operator` section, the same on both servers: `key` ("" or at least 16
// characters, else an error that names it) and `allow_loopback` (default true).
void read_operator_section(core::ConfigReader& root, std::string& key, bool& allow_loopback);

// Constant time whatever the lengths: neither the position of the first wrong byte nor the
// configured key's length shows in the timing.
bool same_secret(std::string_view presented, std::string_view configured);

}  // namespace http
