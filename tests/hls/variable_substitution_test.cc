// EXT-X-DEFINE: NAME/VALUE, QUERYPARAM and IMPORT variables substituted in URIs.
#include <doctest/doctest.h>

#include "support/hls_test_support.h"
#include "support/parse_checked.h"

using namespace hls_test;

TEST_CASE("EXT-X-DEFINE NAME/VALUE variables are substituted in URI lines and URI attributes") {
  auto pl = parse_checked(
      "#EXTM3U\n"
      "#EXT-X-DEFINE:NAME=\"host\",VALUE=\"cdn.example\"\n"
      "#EXT-X-DEFINE:NAME=\"p\",VALUE=\"path/to\"\n"
      "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"a\",URI=\"https://{$host}/a.m3u8\"\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS=\"{$codec}\"\n"
      "https://{$host}/{$p}/v.m3u8\n");
  const auto& slots = require_size(pl.tmpl.slots(), 2);
  CHECK(slots[0].uri == "https://cdn.example/a.m3u8");
  CHECK(slots[0].original == "https://{$host}/a.m3u8");
  CHECK(slots[1].uri == "https://cdn.example/path/to/v.m3u8");
  // Non-URI attributes are left to the client; an undefined one there is no error.
  CHECK(pl.master.variants[0].codecs == "{$codec}");
  CHECK(pl.variables == std::vector<std::pair<std::string, std::string>>{{"host", "cdn.example"},
                                                                         {"p", "path/to"}});
  // The EXT-X-DEFINE lines are kept; the rewrite still parses.
  CHECK(hls::render(pl.tmpl, hls_test::role_mapper).find("#EXT-X-DEFINE:NAME=\"host\"") !=
        std::string::npos);
}

TEST_CASE("variables are resolved before the relative URI is resolved") {
  auto pl = parse_ok(
      "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-DEFINE:NAME=\"up\",VALUE=\"../other\"\n"
      "#EXTINF:4,\n{$up}/a.ts\n");
  CHECK(pl.tmpl.slots()[0].uri == "https://origin.example/live/other/a.ts");
}

TEST_CASE("QUERYPARAM variables come from the playlist URL's query") {
  const std::string text =
      "#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM=\"token\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\n"
      "v.m3u8?parent-token={$token}\n";
  auto pl = parse_ok(text);
  CHECK(pl.tmpl.slots()[0].uri == "https://origin.example/live/channel/v.m3u8?parent-token=abc");
  CHECK(pl.warnings.empty());
  auto pl2 = parse_ok(text, {}, "https://o.example/m.m3u8?token=a%2Fb+c");
  CHECK(pl2.tmpl.slots()[0].uri == "https://o.example/v.m3u8?parent-token=a/b%20c");
}

TEST_CASE("a QUERYPARAM missing from the URL is a warning until a URI uses it, then an error") {
  auto pl = parse_ok(
      "#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM=\"foo\"\n"
      "#EXT-X-SESSION-DATA:DATA-ID=\"x\",VALUE=\"{$foo}\"\n");
  CHECK(hls_test::warning_codes(pl) == std::vector<std::string>{"missing_queryparam"});
  check_rejected(
      "#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM=\"foo\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\n"
      "v.m3u8?f={$foo}\n",
      "undefined_variable", 4);
}

TEST_CASE("IMPORT variables come from ParseOptions::imported_variables") {
  const std::string text =
      "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-DEFINE:IMPORT=\"mvp\"\n"
      "#EXT-X-MAP:URI=\"{$mvp}.mp4\"\n#EXTINF:4,\na{$mvp}.mp4\n";
  hls::ParseOptions options;
  options.imported_variables = {{"other", "x"}, {"mvp", "main"}};
  auto pl = parse_ok(text, options);
  CHECK(pl.tmpl.slots()[0].uri == "https://origin.example/live/channel/main.mp4");
  CHECK(pl.tmpl.slots()[1].uri == "https://origin.example/live/channel/amain.mp4");
  hls_test::check_rewrite_properties(pl, text, options);

  auto err = check_rejected(text, "undefined_variable", 4);
  CHECK(err.message.find("{$mvp}") != std::string::npos);
}

TEST_CASE("an undefined variable in a URI is an error, even without any EXT-X-DEFINE") {
  auto err = check_rejected("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\n{$nope}.ts\n",
                            "undefined_variable", 4);
  CHECK(err.message.starts_with("line 4: "));
}

TEST_CASE("a variable must be defined before the URI that uses it") {
  auto err = parse_error(
      "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\n{$late}.ts\n"
      "#EXT-X-DEFINE:NAME=\"late\",VALUE=\"x\"\n");
  CHECK(err.code == "undefined_variable");
}

TEST_CASE("text that is not a variable reference is left alone and percent-encoded") {
  auto pl = parse_ok("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na{$}b{$x y}c{x}.ts\n");
  CHECK(pl.tmpl.slots()[0].uri ==
        "https://origin.example/live/channel/a%7B$%7Db%7B$x%20y%7Dc%7Bx%7D.ts");
}

TEST_CASE("defining a variable twice is an error; a malformed definition is a warning") {
  CHECK(parse_error(
            "#EXTM3U\n#EXT-X-DEFINE:NAME=\"a\",VALUE=\"1\"\n#EXT-X-DEFINE:NAME=\"a\",VALUE=\"2\"\n")
            .code == "duplicate_variable");
  auto pl = parse_ok(
      "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-DEFINE:NAME=\"a b\",VALUE=\"1\"\n"
      "#EXT-X-DEFINE:NAME=\"c\"\n"
      "#EXT-X-DEFINE:FOO=\"x\"\n");
  CHECK(hls_test::warning_codes(pl) ==
        std::vector<std::string>{"bad_define", "bad_define", "bad_define"});
  CHECK(pl.variables.empty());
}
