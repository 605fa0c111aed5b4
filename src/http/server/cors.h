// Cross-origin resource sharing for browser players (DESIGN.md, "Browsers"):
// which origins may read a server's responses, the headers every answer
// carries, and OPTIONS preflights. A server installs apply_cors() as its
// HttpServer's pre-route hook, so errors (404, 405, 413, 503 draining ...)
// carry the headers as well as the handlers' own replies.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "http/server/http_exchange.h"

namespace http {

// Section "cors" of a server's config. Reloads.
struct CorsOptions {
  // "*" (any origin, the default) or exact origins "scheme://host[:port]".
  std::vector<std::string> allow_origins{"*"};
  // Access-Control-Max-Age of preflight answers.
  int max_age_s = 600;
};

// Reads "allow_origins" and "max_age_s" from the "cors" object; an origin that
// is neither "*" nor scheme://host[:port] without a path is an error naming the key.
CorsOptions read_cors_section(core::ConfigReader& cors);

// What one server answers cross-origin. Immutable after construction.
struct CorsRules {
  std::string allow_methods = "GET, HEAD, OPTIONS";  // listed in preflight answers
  // CMCD-*: players that send their CMCD report as headers (Media3's default, hls.js's
  // useHeaders) need them allowed in the preflight.
  std::string allow_headers =
      "Authorization, Content-Type, Range, If-None-Match, If-Modified-Since, CMCD-Object, "
      "CMCD-Request, "
      "CMCD-Session, CMCD-Status";
  std::string expose_headers = "Content-Length, Content-Range, Age, X-Cache, Retry-After";
  // Exact paths (operator endpoints) and path prefixes that carry no CORS headers.
  std::vector<std::string> exempt_paths;
  std::vector<std::string> exempt_prefixes;
};

// The Access-Control-Allow-Origin value for a request's Origin header, or ""
// when the origin is not allowed (then no CORS header is sent). `origin` is
// nullopt-like empty when the request had none.
std::string allowed_origin(const CorsOptions& options, std::string_view origin);

// Adds the CORS headers for this request to `ex` (Allow-Origin, Expose-Headers,
// Vary: Origin for an origin list). A preflight (OPTIONS with
// Access-Control-Request-Method) on a non-exempt path is answered here with 204,
// Allow-Methods, Allow-Headers and Max-Age; then it returns true (handled).
// Loop thread of the exchange.
bool apply_cors(const CorsOptions& options, const CorsRules& rules, HttpExchange& ex);

}  // namespace http
