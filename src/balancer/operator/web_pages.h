// The browser pages the balancer serves from `web.dir` (docs/balancer.md, "Web
// pages"): the viewer's web player at /player/, the operator's dashboard at
// /admin/, and hls.js (npm, pinned by web/package-lock.json) at
// /vendor/hls.min.js. Static files only; every piece of data the pages show
// comes from the REST API, /admin/status, /metrics and /health.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "http/server/http_exchange.h"

namespace balancer {

struct WebFile {
  std::string path;          // file under the web directory
  std::string content_type;  // with charset for text
};

// The file for a request path, or nullopt when the path names none: "/player/"
// and "/admin/" are their index.html; "/player/<name>" and "/admin/<name>" with
// <name> of [A-Za-z0-9_-] and a .html, .js, .css or .svg extension; and
// "/vendor/hls.min.js". Nothing else (no dot segments, no subfolders). Pure.
std::optional<WebFile> web_file_for(const std::string& web_dir, std::string_view request_path);

// Answers a GET/HEAD of a page path: the file (Cache-Control: no-cache, a
// Content-Security-Policy that allows media and requests to any host: cache
// nodes are other origins), "/player" and "/admin" redirected to their folder,
// 404 not_found JSON for anything else or when web.dir is empty. Reads the file
// on the calling loop (a few small files the page cache keeps). Loop thread.
void serve_web_page(const std::string& web_dir, http::HttpExchange& ex);

}  // namespace balancer
