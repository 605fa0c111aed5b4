// RFC 3986 reference resolution and the percent-encoding helpers (hls/uri.h).
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hls/playlist.h"
#include "hls/uri.h"

namespace {

constexpr std::string_view kRfcBase = "http://a/b/c/d;p?q";

void check_examples(const std::vector<std::pair<const char*, const char*>>& examples) {
  for (const auto& example : examples) {
    const std::string reference = example.first;
    INFO("reference: \"", reference, "\"");
    CHECK(hls::resolve_uri(kRfcBase, reference) == std::string(example.second));
  }
}

}  // namespace

TEST_CASE("resolve_uri gives the results of RFC 3986 section 5.4.1 (normal examples)") {
  check_examples({
      {"g:h", "g:h"},
      {"g", "http://a/b/c/g"},
      {"./g", "http://a/b/c/g"},
      {"g/", "http://a/b/c/g/"},
      {"/g", "http://a/g"},
      {"//g", "http://g"},
      {"?y", "http://a/b/c/d;p?y"},
      {"g?y", "http://a/b/c/g?y"},
      {"#s", "http://a/b/c/d;p?q#s"},
      {"g#s", "http://a/b/c/g#s"},
      {"g?y#s", "http://a/b/c/g?y#s"},
      {";x", "http://a/b/c/;x"},
      {"g;x", "http://a/b/c/g;x"},
      {"g;x?y#s", "http://a/b/c/g;x?y#s"},
      {"", "http://a/b/c/d;p?q"},
      {".", "http://a/b/c/"},
      {"./", "http://a/b/c/"},
      {"..", "http://a/b/"},
      {"../", "http://a/b/"},
      {"../g", "http://a/b/g"},
      {"../..", "http://a/"},
      {"../../", "http://a/"},
      {"../../g", "http://a/g"},
  });
}

TEST_CASE("resolve_uri gives the results of RFC 3986 section 5.4.2 (abnormal examples)") {
  check_examples({
      {"../../../g", "http://a/g"},
      {"../../../../g", "http://a/g"},
      {"/./g", "http://a/g"},
      {"/../g", "http://a/g"},
      {"g.", "http://a/b/c/g."},
      {".g", "http://a/b/c/.g"},
      {"g..", "http://a/b/c/g.."},
      {"..g", "http://a/b/c/..g"},
      {"./../g", "http://a/b/g"},
      {"./g/.", "http://a/b/c/g/"},
      {"g/./h", "http://a/b/c/g/h"},
      {"g/../h", "http://a/b/c/h"},
      {"g;x=1/./y", "http://a/b/c/g;x=1/y"},
      {"g;x=1/../y", "http://a/b/c/y"},
      {"g?y/./x", "http://a/b/c/g?y/./x"},
      {"g?y/../x", "http://a/b/c/g?y/../x"},
      {"g#s/./x", "http://a/b/c/g#s/./x"},
      {"g#s/../x", "http://a/b/c/g#s/../x"},
      {"http:g", "http:g"},  // strict parser
  });
}

TEST_CASE("resolve_uri handles the playlist URI forms seen in the wild") {
  const std::string_view base = "https://origin.example/live/channel/index.m3u8?token=abc";
  CHECK(hls::resolve_uri(base, "seg1.ts") == "https://origin.example/live/channel/seg1.ts");
  CHECK(hls::resolve_uri(base, "../other/seg1.ts?x=1") ==
        "https://origin.example/live/other/seg1.ts?x=1");
  CHECK(hls::resolve_uri(base, "/root.ts") == "https://origin.example/root.ts");
  CHECK(hls::resolve_uri(base, "//cdn.example/a.ts") == "https://cdn.example/a.ts");
  CHECK(hls::resolve_uri(base, "http://plain.example/a.ts") == "http://plain.example/a.ts");
  CHECK(hls::resolve_uri(base, "v.m3u8#cell=core") ==
        "https://origin.example/live/channel/v.m3u8#cell=core");
  CHECK(hls::resolve_uri(base, "skd://key-id?x=1") == "skd://key-id?x=1");
  CHECK(hls::resolve_uri(base, "data:text/plain;base64,YQo=") == "data:text/plain;base64,YQo=");
  CHECK(hls::resolve_uri(base, ".//entire6.ts") ==
        "https://origin.example/live/channel//entire6.ts");
  CHECK(hls::resolve_uri(base, "../../../../x.ts") == "https://origin.example/x.ts");
  // A colon in the first segment after something that is not a scheme is a path.
  CHECK(hls::resolve_uri(base, "a b:c.ts") == "https://origin.example/live/channel/a b:c.ts");
  // Base without a path: the merge inserts "/".
  CHECK(hls::resolve_uri("https://o.example", "x.ts") == "https://o.example/x.ts");
  CHECK(hls::resolve_uri("https://o.example?q", "?r") == "https://o.example?r");
}

TEST_CASE("resolve_uri: paths without dot segments are kept as they are, the others cleaned") {
  // A dot segment in the base's directory, the reference's path, or both.
  CHECK(hls::resolve_uri("https://o.example/a/./b/../c/index.m3u8", "x.ts") ==
        "https://o.example/a/c/x.ts");
  CHECK(hls::resolve_uri("https://o.example/a/index.m3u8", "b/./x.ts") ==
        "https://o.example/a/b/x.ts");
  CHECK(hls::resolve_uri("https://o.example/a/index.m3u8", "//cdn.example/b/../x.ts") ==
        "https://cdn.example/x.ts");
  CHECK(hls::resolve_uri("https://o.example/a/index.m3u8", "/b/..") == "https://o.example/");
  // Names that start with '.' are not dot segments.
  CHECK(hls::resolve_uri("https://o.example/.live/index.m3u8", ".x.ts") ==
        "https://o.example/.live/.x.ts");
  CHECK(hls::resolve_uri("https://o.example/a/index.m3u8", "/.well-known/k") ==
        "https://o.example/.well-known/k");
  CHECK(hls::resolve_uri("https://o.example/a/index.m3u8", "..x/y.ts") ==
        "https://o.example/a/..x/y.ts");
  // A base path without a '/': the reference's path alone.
  CHECK(hls::resolve_uri("urn:example", "x.ts") == "urn:x.ts");
}

TEST_CASE("resolve_uri refuses a base URL that is not absolute") {
  CHECK_FALSE(hls::resolve_uri("/relative/index.m3u8", "a.ts").has_value());
  CHECK_FALSE(hls::resolve_uri("", "a.ts").has_value());
  CHECK_FALSE(hls::resolve_uri("1http://x/", "a.ts").has_value());
}

TEST_CASE("remove_dot_segments follows RFC 3986 section 5.2.4") {
  CHECK(hls::remove_dot_segments("/a/b/c/./../../g") == "/a/g");
  CHECK(hls::remove_dot_segments("mid/content=5/../6") == "mid/6");
  CHECK(hls::remove_dot_segments("/..") == "/");
  CHECK(hls::remove_dot_segments("/.") == "/");
  CHECK(hls::remove_dot_segments("..") == "");
  CHECK(hls::remove_dot_segments("a/..") == "/");
  CHECK(hls::remove_dot_segments("") == "");
}

TEST_CASE("split_uri separates the five components of RFC 3986 Appendix B") {
  auto p = hls::split_uri("http://www.ics.uci.edu/pub/ietf/uri/?q=1#Related");
  CHECK(p.scheme == "http");
  CHECK(p.authority == "www.ics.uci.edu");
  CHECK(p.path == "/pub/ietf/uri/");
  CHECK(p.query == "q=1");
  CHECK(p.fragment == "Related");
  auto empty_query = hls::split_uri("a?");
  CHECK_FALSE(empty_query.scheme.has_value());
  CHECK(empty_query.query == "");
  CHECK_FALSE(empty_query.fragment.has_value());
  CHECK(hls::is_absolute_uri("skd://x"));
  CHECK_FALSE(hls::is_absolute_uri("//host/x"));
  CHECK(hls::is_valid_scheme("a+b-c.d"));
  CHECK_FALSE(hls::is_valid_scheme("1a"));
}

TEST_CASE("percent helpers encode, decode and find query parameters") {
  CHECK(hls::percent_decode("a%20b%2fc") == "a b/c");
  CHECK(hls::percent_decode("a+b", true) == "a b");
  CHECK(hls::percent_decode("a+b") == "a+b");
  CHECK_FALSE(hls::percent_decode("bad%2").has_value());
  CHECK_FALSE(hls::percent_decode("bad%zz").has_value());
  CHECK(hls::percent_encode_component("a b/c?d=é") == "a%20b%2Fc%3Fd%3D%C3%A9");
  CHECK(hls::escape_uri_chars("a b\"{x}|%41\xE3\x80\x80") == "a%20b%22%7Bx%7D|%41%E3%80%80");
  CHECK(hls::has_forbidden_uri_chars("a\\b"));
  CHECK(hls::has_forbidden_uri_chars(std::string_view("a\0b", 3)));
  CHECK(hls::has_forbidden_uri_chars("a\tb"));
  CHECK_FALSE(hls::has_forbidden_uri_chars("a b\xE3\x80\x80"));

  const std::string_view url = "https://h/p?token=abc&empty&sp=a+b%21&token=second#frag";
  CHECK(hls::query_param(url, "token") == "abc");
  CHECK(hls::query_param(url, "empty") == "");
  CHECK(hls::query_param(url, "sp") == "a b!");
  CHECK_FALSE(hls::query_param(url, "missing").has_value());
  CHECK_FALSE(hls::query_param("https://h/p", "token").has_value());
}

TEST_CASE("percent_encode_component keeps the unreserved bytes and encodes every other") {
  CHECK(hls::percent_encode_component("") == "");
  CHECK(hls::percent_encode_component("venue-a.1_b~") == "venue-a.1_b~");
  CHECK(hls::percent_encode_component("a b/c?d=e&f") == "a%20b%2Fc%3Fd%3De%26f");
  CHECK(hls::percent_encode_component("\xC3\xA9t\xC3\xA9") == "%C3%A9t%C3%A9");
  CHECK(hls::percent_encode_component("%") == "%25");
  // Appended after what `out` holds.
  std::string out = "viewer=";
  hls::append_percent_encoded_component(out, "v 1");
  CHECK(out == "viewer=v%201");
  // Every byte: unreserved ones as they are, the rest as %XX in upper-case hex.
  for (int c = 0; c < 256; ++c) {
    const char ch = static_cast<char>(c);
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    const char* hex = "0123456789ABCDEF";
    const std::string expected =
        unreserved ? std::string(1, ch) : std::string{'%', hex[c >> 4], hex[c & 15]};
    CHECK(hls::percent_encode_component(std::string(1, ch)) == expected);
  }
}

TEST_CASE("every byte: refused in a URI, percent-encoded, or kept as it is") {
  for (int c = 0; c < 256; ++c) {
    CAPTURE(c);
    const char ch = static_cast<char>(c);
    const std::string one(1, ch);
    const bool refused = c < 0x20 || c == 0x7F || c == '\\';
    const bool encoded = c >= 0x80 || std::string_view(" \"<>`{}").find(ch) != std::string::npos;
    CHECK(hls::has_forbidden_uri_chars("a" + one + "b") == refused);
    const hls::UriBytesFound found = hls::find_uri_bytes("a" + one + "b");
    CHECK(found.forbidden == refused);
    CHECK(found.escaped == encoded);
    std::string escaped = "a" + one;
    hls::escape_uri_chars_in_place(escaped);
    CHECK(escaped == (encoded ? "a" + hls::percent_encode_component(one) : "a" + one));
    CHECK(hls::escape_uri_chars(one + "z") == escaped.substr(1) + "z");
  }
}

TEST_CASE("a playlist's URIs are escaped where their reference or the playlist's URL needs it") {
  const std::string text =
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ns 1.ts\n#EXTINF:2,\ns2.ts\n";
  auto plain = hls::parse_playlist(text, "http://o/live/index.m3u8");
  REQUIRE(plain.ok());
  CHECK(plain->tmpl.slots()[0].uri == "http://o/live/s%201.ts");
  CHECK(plain->tmpl.slots()[1].uri == "http://o/live/s2.ts");
  // Bytes to escape in the URL only: every URI resolved against its directory gets them escaped.
  auto odd_base = hls::parse_playlist(text, "http://o/li{v}e/index.m3u8");
  REQUIRE(odd_base.ok());
  CHECK(odd_base->tmpl.slots()[0].uri == "http://o/li%7Bv%7De/s%201.ts");
  CHECK(odd_base->tmpl.slots()[1].uri == "http://o/li%7Bv%7De/s2.ts");
}
