// JSON nesting is bounded before anything is parsed: depth at the limit passes,
// one more level is refused, brackets inside strings do not count, and a config
// file nested too deeply is refused naming the file.
#include <doctest/doctest.h>

#include <string>

#include "core/config.h"
#include "core/json.h"

namespace {

std::string nested_arrays(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

}  // namespace

TEST_CASE("nesting at the limit passes and one level more is refused") {
  CHECK_FALSE(core::json_nesting_exceeds(nested_arrays(16), 16));
  CHECK(core::json_nesting_exceeds(nested_arrays(17), 16));
  CHECK_FALSE(core::json_nesting_exceeds(R"({"a":{"b":[1,{"c":[]}]}})", 5));
  CHECK(core::json_nesting_exceeds(R"({"a":{"b":[1,{"c":[]}]}})", 4));
  CHECK_FALSE(core::json_nesting_exceeds("[[],[],[],[]]", 2));  // siblings do not add up
  CHECK_FALSE(core::json_nesting_exceeds("", 1));
  CHECK_FALSE(core::json_nesting_exceeds("42", 0));
}

TEST_CASE("brackets inside strings do not count, escaped quotes included") {
  CHECK_FALSE(core::json_nesting_exceeds(R"({"a":"[[[[{{{{"})", 1));
  CHECK_FALSE(core::json_nesting_exceeds(R"(["\"[[[[", "\\", "]]]"])", 1));
  CHECK(core::json_nesting_exceeds(R"(["\\", [[]]])",
                                   2));  // "\\" ends the string: the brackets after count
  CHECK_FALSE(core::json_nesting_exceeds(R"({"k[{":"v]}", "x":["\u005b"]})", 2));
}

TEST_CASE("parse_json refuses deep text without building it, and reports malformed text") {
  rapidjson::Document doc;
  auto deep = core::parse_json(std::string(1'000'000, '['), doc, 64);
  REQUIRE_FALSE(deep.ok());
  CHECK(deep.error().code == "json_too_deep");
  CHECK(doc.IsNull());

  auto bad = core::parse_json("{not json", doc);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == "malformed_json");

  REQUIRE(core::parse_json(nested_arrays(64), doc).ok());
  CHECK(doc.IsArray());
  CHECK(core::parse_json(nested_arrays(65), doc).error().code == "json_too_deep");
  rapidjson::Document object;
  REQUIRE(core::parse_json(R"({"s":"[[[[[[","n":[1,[2]]})", object, 3).ok());
  CHECK(object["s"].GetString() == std::string("[[[[[["));
}

TEST_CASE("a config file or --set value nested too deeply is refused, naming the file") {
  const std::string deep = "{\"a\":" + nested_arrays(core::kMaxJsonDepth) + "}";
  auto file = core::ConfigDocument::parse("deep.json", deep, {});
  REQUIRE_FALSE(file.ok());
  CHECK(file.error().code == "bad_config");
  CHECK(file.error().message.find("deep.json") == 0);
  CHECK(file.error().message.find("deeper than 64") != std::string::npos);

  auto over = core::ConfigDocument::parse("x.json", "{}", {"k=" + std::string(100'000, '[')});
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().message.find("x.json: override 'k'") == 0);

  CHECK(core::ConfigDocument::parse("ok.json",
                                    "{\"a\":" + nested_arrays(core::kMaxJsonDepth - 1) + "}", {})
            .ok());
}
