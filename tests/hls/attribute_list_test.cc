// The attribute-list tokenizer and scalar value parsers (internal to the library).
#include <doctest/doctest.h>

#include "hls/attribute_list.h"

using hls::detail::parse_attribute_list;

TEST_CASE("attribute lists keep quoted commas inside their value") {
  auto list = parse_attribute_list(R"(BANDWIDTH=1,CODECS="avc1.4d401f,mp4a.40.2",URI="a,b.m3u8")");
  REQUIRE(list.attrs.size() == 3);
  CHECK(list.attrs[0].name == "BANDWIDTH");
  CHECK(list.attrs[0].value == "1");
  CHECK_FALSE(list.attrs[0].quoted);
  CHECK(list.attrs[1].value == "avc1.4d401f,mp4a.40.2");
  CHECK(list.attrs[1].quoted);
  CHECK(list.find("URI")->value == "a,b.m3u8");
  CHECK(list.find("URI")->value_pos == 48);
  CHECK(list.fatal_problem.empty());
  CHECK(list.minor_problem.empty());
}

TEST_CASE("attribute lists tolerate blanks after commas and around '='") {
  auto list = parse_attribute_list(R"(METHOD=AES-128,URI="../key.bin", IV=0X10ef ,X = "y")");
  REQUIRE(list.attrs.size() == 4);
  CHECK(list.attrs[2].name == "IV");
  CHECK(list.attrs[2].value == "0X10ef");
  CHECK(list.attrs[3].name == "X");
  CHECK(list.attrs[3].value == "y");
  CHECK(list.fatal_problem.empty());
  CHECK(list.minor_problem.empty());
}

TEST_CASE("attribute lists report an unterminated quote and bytes after a closing quote as fatal") {
  CHECK_FALSE(parse_attribute_list(R"(URI="a.mp4)").fatal_problem.empty());
  CHECK_FALSE(parse_attribute_list(R"(X="a"b,URI="c")").fatal_problem.empty());
  CHECK_FALSE(parse_attribute_list(R"(X"=1)").fatal_problem.empty());
}

TEST_CASE("attribute lists report a stray quote in an unquoted value as minor") {
  auto list = parse_attribute_list(R"(IV=00ff",URI="https://k/secret")");
  CHECK(list.fatal_problem.empty());
  CHECK_FALSE(list.minor_problem.empty());
  CHECK(list.find("URI")->value == "https://k/secret");
  CHECK_FALSE(parse_attribute_list("A=1,JUNK,B=2").minor_problem.empty());
  CHECK(parse_attribute_list("A=1,,B=2,").minor_problem.empty());
}

TEST_CASE("scalar values parse per RFC 8216 section 4.2") {
  using namespace hls::detail;
  CHECK(parse_decimal_integer("0") == 0u);
  CHECK(parse_decimal_integer("18446744073709551615") == 18446744073709551615ull);
  CHECK_FALSE(parse_decimal_integer("18446744073709551616").has_value());
  CHECK_FALSE(parse_decimal_integer("-1").has_value());
  CHECK_FALSE(parse_decimal_integer("").has_value());
  CHECK_FALSE(parse_decimal_integer("1 ").has_value());
  CHECK(parse_decimal_float("9.009") == doctest::Approx(9.009));
  CHECK(parse_decimal_float("10") == doctest::Approx(10));
  CHECK(parse_decimal_float("10.") == doctest::Approx(10));
  CHECK_FALSE(parse_decimal_float("-1").has_value());
  CHECK_FALSE(parse_decimal_float("1e3").has_value());
  CHECK_FALSE(parse_decimal_float(".").has_value());
  CHECK_FALSE(parse_decimal_float("1.2.3").has_value());
  CHECK_FALSE(parse_decimal_float("nan").has_value());
  auto res = parse_resolution("1920x1080");
  REQUIRE(res.has_value());
  CHECK(res->width == 1920);
  CHECK(res->height == 1080);
  CHECK_FALSE(parse_resolution("1920").has_value());
  auto br = parse_byte_range("75232@0");
  REQUIRE(br.has_value());
  CHECK(br->length == 75232);
  CHECK(br->offset == 0u);
  CHECK_FALSE(parse_byte_range("69864")->offset.has_value());
  CHECK_FALSE(parse_byte_range("587500@").has_value());
  CHECK(trim_blanks(" \tx y\t ") == "x y");
}
