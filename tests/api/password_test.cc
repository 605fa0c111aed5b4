// Password hashes: self-describing format, salted, verify right and wrong
// passwords, refuse malformed or absurd stored strings.
#include <doctest/doctest.h>

#include "api/password.h"

using namespace api;

TEST_CASE("a password hash names its algorithm and iterations and verifies only its password") {
  auto h = hash_password("123456", 1000);
  REQUIRE(h.ok());
  CHECK(h->rfind("pbkdf2-sha256$1000$", 0) == 0);
  CHECK(stored_iterations(*h) == 1000);
  CHECK(verify_password("123456", *h));
  CHECK_FALSE(verify_password("1234567", *h));
  CHECK_FALSE(verify_password("", *h));
  CHECK(h->find("123456") == std::string::npos);
}

TEST_CASE("two hashes of the same password differ (random salt)") {
  auto a = hash_password("secret", 1000);
  auto b = hash_password("secret", 1000);
  REQUIRE((a.ok() && b.ok()));
  CHECK(*a != *b);
  CHECK(verify_password("secret", *a));
  CHECK(verify_password("secret", *b));
}

TEST_CASE("a hash made with more iterations still verifies (iterations can rise later)") {
  auto h = hash_password("pw", 2000);
  REQUIRE(h.ok());
  CHECK(stored_iterations(*h) == 2000);
  CHECK(verify_password("pw", *h));
}

TEST_CASE("PBKDF2-HMAC-SHA256 matches the RFC 7914 test vector") {
  // RFC 7914 §11: P="passwd", S="salt", c=1, dkLen=64 begins 55 ac 04 6e 56 e3 08 9f.
  // Our stored format with salt "salt" (base64url c2FsdA) and c=1 must verify "passwd".
  // The 32-byte prefix of that vector, base64url:
  const std::string stored = "pbkdf2-sha256$1$c2FsdA$VawEblbjCJ_sFpHCJUS2BflBhSFt3gRl5oudV8INrLw";
  CHECK(verify_password("passwd", stored));
  CHECK_FALSE(verify_password("passwe", stored));
}

TEST_CASE("malformed stored strings never verify") {
  auto good = hash_password("x", 1000);
  REQUIRE(good.ok());
  for (std::string bad : {std::string(""), std::string("plain"), std::string("md5$1000$c2FsdA$AAAA"),
                          std::string("pbkdf2-sha256$abc$c2FsdA$") + good->substr(good->rfind('$') + 1),
                          std::string("pbkdf2-sha256$0$c2FsdA$") + good->substr(good->rfind('$') + 1),
                          std::string("pbkdf2-sha256$99999999$c2FsdA$") + good->substr(good->rfind('$') + 1),
                          std::string("pbkdf2-sha256$1000$c2FsdA$short"), *good + "$extra"}) {
    CAPTURE(bad);
    CHECK_FALSE(verify_password("x", bad));
    CHECK(stored_iterations(bad) == 0);
  }
  CHECK_FALSE(verify_dummy("x", 1000));
}
