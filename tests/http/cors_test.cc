// CORS policy: which Origin gets which Access-Control-Allow-Origin, and the
// "cors" config section's validation.
#include <doctest/doctest.h>

#include "core/config.h"
#include "http/server/cors.h"

using core::ConfigDocument;
using core::ConfigReader;
using http::CorsOptions;

namespace {

core::Result<CorsOptions> read(const std::string& json) {
  auto doc = ConfigDocument::parse("b.json", json, {});
  REQUIRE(doc.ok());
  ConfigReader root(*doc);
  auto section = root.object("cors");
  CorsOptions o = http::read_cors_section(section);
  root.finish();
  if (!root.ok()) return core::Error{"bad_config", root.error_text()};
  return o;
}

}  // namespace

TEST_CASE("cors: \"*\" by default allows every origin, also requests without one") {
  auto o = read("{}");
  REQUIRE(o.ok());
  CHECK(o->allow_origins == std::vector<std::string>{"*"});
  CHECK(o->max_age_s == 600);
  CHECK(http::allowed_origin(*o, "http://a.example") == "*");
  CHECK(http::allowed_origin(*o, "") == "*");
}

TEST_CASE("cors: a list echoes a listed origin (ASCII case-insensitively) and nothing else") {
  auto o = read(
      R"({"cors":{"allow_origins":["https://app.example","http://127.0.0.1:8090"],"max_age_s":60}})");
  REQUIRE(o.ok());
  CHECK(o->max_age_s == 60);
  CHECK(http::allowed_origin(*o, "https://app.example") == "https://app.example");
  CHECK(http::allowed_origin(*o, "HTTPS://APP.example") == "HTTPS://APP.example");
  CHECK(http::allowed_origin(*o, "http://127.0.0.1:8090") == "http://127.0.0.1:8090");
  CHECK(http::allowed_origin(*o, "https://app.example.evil") == "");
  CHECK(http::allowed_origin(*o, "https://app.exampl") == "");
  CHECK(http::allowed_origin(*o, "null") == "");
  CHECK(http::allowed_origin(*o, "") == "");
}

TEST_CASE("cors: bad lists are errors naming cors.allow_origins") {
  for (const char* bad :
       {R"({"cors":{"allow_origins":[]}})",
        R"({"cors":{"allow_origins":["*","https://a.example"]}})",
        R"({"cors":{"allow_origins":["https://a.example/"]}})",
        R"({"cors":{"allow_origins":["a.example"]}})", R"({"cors":{"allow_origins":"*"}})",
        R"({"cors":{"allow_origin":["*"]}})", R"({"cors":{"max_age_s":-1}})"}) {
    INFO(bad);
    auto o = read(bad);
    REQUIRE_FALSE(o.ok());
    CHECK(o.error().message.find("cors.") != std::string::npos);
  }
}
