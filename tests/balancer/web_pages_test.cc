// Which request paths name a web page file (the player, the dashboard, hls.js), and
// that nothing else under the web directory can be reached.
#include <doctest/doctest.h>

#include "balancer/operator/web_pages.h"

using balancer::web_file_for;

TEST_CASE("web pages: the player, the dashboard and hls.js map to their files") {
  auto index = web_file_for("/w", "/player/");
  REQUIRE(index.has_value());
  CHECK(index->path == "/w/player/index.html");
  CHECK(index->content_type == "text/html; charset=utf-8");
  auto js = web_file_for("/w", "/admin/admin.js");
  REQUIRE(js.has_value());
  CHECK(js->path == "/w/admin/admin.js");
  CHECK(js->content_type == "text/javascript; charset=utf-8");
  CHECK(web_file_for("/w", "/player/player.css")->content_type == "text/css; charset=utf-8");
  CHECK(web_file_for("/w", "/vendor/hls.min.js")->path == "/w/node_modules/hls.js/dist/hls.min.js");
}

TEST_CASE(
    "web pages: no dot segments, subfolders, other extensions or other vendor files; off without "
    "web.dir") {
  for (const char* path : {"/player/../balancer.json", "/player/..", "/player/.hidden.js",
                           "/player/a/b.js", "/player/x.json", "/player/x", "/player/x.js/",
                           "/player/%2e%2e/x.js", "/admin", "/vendor/hls.js", "/vendor/../web/x.js",
                           "/player/index.html.bak", "/other/index.html", "/player//x.js"}) {
    INFO(path);
    CHECK_FALSE(web_file_for("/w", path).has_value());
  }
  CHECK_FALSE(web_file_for("", "/player/").has_value());
  CHECK_FALSE(web_file_for("", "/vendor/hls.min.js").has_value());
}
