#include "balancer/operator/web_pages.h"

#include <fstream>
#include <sstream>

namespace balancer {
namespace {

constexpr std::string_view kVendorHls = "/vendor/hls.min.js";

bool plain_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
    if (!ok) return false;
  }
  return true;
}

std::optional<std::string> type_of(std::string_view extension) {
  if (extension == "html") return "text/html; charset=utf-8";
  if (extension == "js") return "text/javascript; charset=utf-8";
  if (extension == "css") return "text/css; charset=utf-8";
  if (extension == "svg") return "image/svg+xml";
  return std::nullopt;
}

}  // namespace

std::optional<WebFile> web_file_for(const std::string& web_dir, std::string_view request_path) {
  if (web_dir.empty()) return std::nullopt;
  if (request_path == kVendorHls) {
    return WebFile{web_dir + "/node_modules/hls.js/dist/hls.min.js",
                   "text/javascript; charset=utf-8"};
  }
  for (std::string_view folder : {std::string_view("/player/"), std::string_view("/admin/")}) {
    if (request_path.substr(0, folder.size()) != folder) continue;
    std::string_view rest = request_path.substr(folder.size());
    std::string base = web_dir + std::string(folder);
    if (rest.empty()) return WebFile{base + "index.html", "text/html; charset=utf-8"};
    auto dot = rest.rfind('.');
    if (dot == std::string_view::npos || !plain_name(rest.substr(0, dot))) return std::nullopt;
    auto type = type_of(rest.substr(dot + 1));
    if (!type) return std::nullopt;
    return WebFile{base + std::string(rest), *type};
  }
  return std::nullopt;
}

void serve_web_page(const std::string& web_dir, http::HttpExchange& ex) {
  if (!web_dir.empty() && (ex.path() == "/player" || ex.path() == "/admin")) {
    ex.add_header("Location", ex.path() + "/");
    return ex.reply_error(301, "moved", "The page is at " + ex.path() + "/.");
  }
  auto file = web_file_for(web_dir, ex.path());
  std::string body;
  bool found = false;
  if (file) {
    std::ifstream in(file->path, std::ios::binary);
    if (in) {
      std::ostringstream text;
      text << in.rdbuf();
      body = std::move(text).str();
      found = !in.bad();
    }
  }
  if (!found) {
    return ex.reply_error(404, "not_found",
                          web_dir.empty()
                              ? "The web pages are off on this server (web.dir is empty)."
                              : "No page at this path.");
  }
  ex.add_header("Cache-Control", "no-cache");
  ex.add_header("X-Content-Type-Options", "nosniff");
  // Chunks, pings and cache health come from other origins (the cache nodes); MSE plays from blob:
  // URLs.
  ex.add_header(
      "Content-Security-Policy",
      "default-src 'self'; connect-src *; media-src 'self' blob:; worker-src 'self' blob:; "
      "img-src 'self' data:; style-src 'self'; frame-ancestors 'none'");
  ex.reply(200, body, file->content_type);
}

}  // namespace balancer
