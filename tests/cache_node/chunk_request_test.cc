#include <doctest/doctest.h>

#include "cache_node/serving/chunk_request.h"
#include "core/url.h"

using cache_node::parse_chunk_request;

TEST_CASE("chunk URL: origin id, path and query are split; the key ignores nothing else") {
  auto r = parse_chunk_request("/o/demo/live/v1/seg_00001.ts?token=abc");
  REQUIRE(r.ok());
  CHECK(r->origin_id == "demo");
  CHECK(r->origin_path == "/live/v1/seg_00001.ts");
  CHECK(r->query == "token=abc");
  CHECK(r->cache_key() == "demo/live/v1/seg_00001.ts?token=abc");
  auto plain = parse_chunk_request("/o/demo/a%20b.ts");
  REQUIRE(plain.ok());
  CHECK(plain->origin_path == "/a%20b.ts");
  CHECK(plain->cache_key() == "demo/a%20b.ts");
}

TEST_CASE("chunk URL: traversal, bad encoding, NUL, absolute URLs and junk are refused") {
  const char* bad[] = {
      "/x/demo/a.ts",                      // not under /o/
      "/o/demo",                           // no path
      "/o/demo/",                          // empty path
      "/o//a.ts",                          // empty origin id
      "/o/de.mo/a.ts",                     // bad origin id
      "/o/demo/../etc/passwd",             // dot-dot
      "/o/demo/a/./b.ts",                  // dot
      "/o/demo/%2e%2e/secret",             // encoded dot-dot
      "/o/demo/%2E%2e%2fx",                // encoded dot-dot and slash
      "/o/demo/a%zz.ts",                   // malformed escape
      "/o/demo/a%2",                       // truncated escape
      "/o/demo/a%00.ts",                   // encoded NUL
      "/o/demo//evil.example/x.ts",        // scheme-relative
      "/o/demo/http://evil.example/x.ts",  // absolute URL in the path
      "/o/demo/a%5c..%5cb",                // backslash
      "/o/demo/a\x01.ts",                  // control character
      "/o/demo/a//b.ts",                   // empty segment
      "/o/demo/a.ts?x=%zz",                // malformed query escape
  };
  for (const char* target : bad) {
    CAPTURE(target);
    auto r = parse_chunk_request(target);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "bad_request");
  }
}

TEST_CASE("chunk URL: the node accepts exactly the origin targets the shared rule accepts") {
  struct Target {
    const char* path;
    const char* query;
  };
  const Target targets[] = {
      {"/live/a.ts", ""},   {"/live/a.ts", "t=1&&u="}, {"/live//x.ts", ""},    {"/./x.ts", ""},
      {"/%2e%2e/x.ts", ""}, {"/a%2F%2Fb.ts", ""},      {"/a%zz.ts", ""},       {"/a.ts", "x=%zz"},
      {"/a%5cb.ts", ""},    {"//host/a.ts", ""},       {"/a%20b+c.ts", "q=+"}, {"/a.ts", "x=%00"},
  };
  for (const Target& t : targets) {
    std::string target = std::string("/o/demo") + t.path + (*t.query ? "?" : "") + t.query;
    CAPTURE(target);
    CHECK(parse_chunk_request(target).ok() ==
          core::check_servable_origin_target(t.path, t.query).ok());
  }
}
