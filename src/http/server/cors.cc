#include "http/server/cors.h"

#include <algorithm>
#include <cctype>

namespace http {
namespace {

// scheme://host[:port] with nothing after the authority, as browsers send it.
bool valid_origin(std::string_view o) {
  auto sep = o.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  std::string_view scheme = o.substr(0, sep), authority = o.substr(sep + 3);
  if (authority.empty()) return false;
  for (char ch : scheme) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '+' && ch != '-' && ch != '.')
      return false;
  }
  return authority.find_first_of("/?#* ") == std::string_view::npos;
}

bool exempt(const CorsRules& rules, const std::string& path) {
  if (std::find(rules.exempt_paths.begin(), rules.exempt_paths.end(), path) !=
      rules.exempt_paths.end())
    return true;
  return std::any_of(rules.exempt_prefixes.begin(), rules.exempt_prefixes.end(),
                     [&](const std::string& p) { return path.compare(0, p.size(), p) == 0; });
}

}  // namespace

CorsOptions read_cors_section(core::ConfigReader& cors) {
  CorsOptions o;
  o.allow_origins = cors.string_list("allow_origins", {"*"});
  if (o.allow_origins.empty()) cors.fail("allow_origins", "must list \"*\" or at least one origin");
  for (const auto& origin : o.allow_origins) {
    if (origin == "*") {
      if (o.allow_origins.size() != 1) cors.fail("allow_origins", "\"*\" must be the only entry");
    } else if (!valid_origin(origin)) {
      cors.fail("allow_origins",
                "\"" + origin + "\" is not \"*\" or scheme://host[:port] (no path, no slash)");
    }
  }
  o.max_age_s = static_cast<int>(cors.integer("max_age_s", 600, 0, 86400));
  cors.finish();
  return o;
}

std::string allowed_origin(const CorsOptions& options, std::string_view origin) {
  for (const auto& allowed : options.allow_origins) {
    if (allowed == "*") return "*";
    if (!origin.empty() && allowed.size() == origin.size() &&
        std::equal(allowed.begin(), allowed.end(), origin.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return std::string(origin);
    }
  }
  return {};
}

bool apply_cors(const CorsOptions& options, const CorsRules& rules, HttpExchange& ex) {
  if (exempt(rules, ex.path())) return false;
  // Every response of a hit passes here: the common "*" case reads no request header
  // and builds no header name.
  static const std::string kAllowOrigin = "Access-Control-Allow-Origin";
  static const std::string kExposeHeaders = "Access-Control-Expose-Headers";
  static const std::string kStar = "*";
  const bool any = options.allow_origins.size() == 1 && options.allow_origins[0] == "*";
  std::string allow = any ? kStar : allowed_origin(options, ex.header("Origin").value_or(""));
  // With an origin list the answer depends on Origin: shared caches must keep one copy per origin.
  if (!any) ex.add_header("Vary", "Origin");
  if (!allow.empty()) {
    ex.add_header(kAllowOrigin, allow);
    ex.add_header(kExposeHeaders, rules.expose_headers);
  }
  if (ex.method() != "OPTIONS" || !ex.header("Access-Control-Request-Method")) return false;
  if (!allow.empty()) {
    ex.add_header("Access-Control-Allow-Methods", rules.allow_methods);
    ex.add_header("Access-Control-Allow-Headers", rules.allow_headers);
    ex.add_header("Access-Control-Max-Age", std::to_string(options.max_age_s));
  }
  ex.add_header("Cache-Control", "no-store");
  ex.reply(204, "", "");
  return true;
}

}  // namespace http
