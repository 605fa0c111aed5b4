// Tokens: 256 random bits as 43 base64url characters, stored as SHA-256,
// compared in constant time; base64url round trips.
#include <doctest/doctest.h>

#include <set>

#include "api/token.h"

using namespace api;

TEST_CASE("tokens are 43 base64url characters, distinct, and well formed") {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto t = new_token();
    REQUIRE(t.has_value());
    CHECK(t->size() == kTokenChars);
    CHECK(well_formed_token(*t));
    CHECK(base64url_decode(*t)->size() == kTokenBytes);
    seen.insert(*t);
  }
  CHECK(seen.size() == 100);
}

TEST_CASE("malformed tokens are recognised without a lookup") {
  CHECK_FALSE(well_formed_token(""));
  CHECK_FALSE(well_formed_token(std::string(42, 'a')));
  CHECK_FALSE(well_formed_token(std::string(44, 'a')));
  CHECK_FALSE(well_formed_token(std::string(42, 'a') + "="));
  CHECK_FALSE(well_formed_token(std::string(42, 'a') + "+"));
  CHECK(well_formed_token(std::string(43, '_')));
}

TEST_CASE("the stored form of a token is its SHA-256") {
  // SHA-256("abc") = ba7816bf...
  std::string h = token_hash("abc");
  REQUIRE(h.size() == 32);
  CHECK(static_cast<unsigned char>(h[0]) == 0xba);
  CHECK(static_cast<unsigned char>(h[31]) == 0xad);
  CHECK(hashes_equal(h, token_hash("abc")));
  CHECK_FALSE(hashes_equal(h, token_hash("abd")));
  CHECK_FALSE(hashes_equal(h, h.substr(1)));
}

TEST_CASE("base64url round trips every length and refuses foreign characters") {
  std::string bytes;
  for (int n = 0; n < 40; ++n) {
    auto enc = base64url_encode(bytes);
    CHECK(enc.find_first_of("+/=") == std::string::npos);
    auto dec = base64url_decode(enc);
    REQUIRE(dec.has_value());
    CHECK(*dec == bytes);
    bytes += static_cast<char>(n * 37 + 250);
  }
  CHECK(base64url_encode("salt") == "c2FsdA");
  CHECK_FALSE(base64url_decode("ab+c").has_value());
  CHECK_FALSE(base64url_decode("abcde").has_value());
}
