// Password hashes: new ones are Argon2id in the PHC string (salted, verifying only their
// password, the reference implementation's test vector), older PBKDF2 ones still verify, the
// rehash decision, and malformed or absurd stored strings never verify (nor allocate).
#include <doctest/doctest.h>

#include "api/password.h"

using namespace api;

namespace {
// Fast costs for tests (what api.kdf_allow_weak_for_tests allows).
const Argon2Params kWeak{64, 1, 1};
}  // namespace

TEST_CASE("an Argon2id hash is a PHC string with its costs and verifies only its password") {
  auto h = hash_password("123456", kWeak);
  REQUIRE(h.ok());
  CHECK(h->rfind("$argon2id$v=19$m=64,t=1,p=1$", 0) == 0);
  CHECK(stored_argon2_params(*h) == kWeak);
  CHECK(verify_password("123456", *h));
  CHECK_FALSE(verify_password("1234567", *h));
  CHECK_FALSE(verify_password("", *h));
  CHECK(h->find("123456") == std::string::npos);
  CHECK(stored_iterations(*h) == 0);
  // 16-byte salt and 32-byte hash, standard base64 without padding: 22 and 43 characters.
  const std::string tail = h->substr(std::string("$argon2id$v=19$m=64,t=1,p=1$").size());
  CHECK(tail.size() == 22 + 1 + 43);
  CHECK(tail.find('=') == std::string::npos);
}

TEST_CASE("the production default is OWASP's Argon2id minimum and verifies") {
  const Argon2Params production;
  CHECK(production.memory_kib == 19456);
  CHECK(production.passes == 2);
  CHECK(production.lanes == 1);
  auto h = hash_password("pw", production);
  REQUIRE(h.ok());
  CHECK(h->rfind("$argon2id$v=19$m=19456,t=2,p=1$", 0) == 0);
  CHECK(verify_password("pw", *h));
}

TEST_CASE("two hashes of the same password differ (random salt)") {
  auto a = hash_password("secret", kWeak);
  auto b = hash_password("secret", kWeak);
  REQUIRE((a.ok() && b.ok()));
  CHECK(*a != *b);
  CHECK(verify_password("secret", *a));
  CHECK(verify_password("secret", *b));
}

TEST_CASE("Argon2id matches the reference implementation's test vector") {
  // phc-winner-argon2 test.c, Argon2id v=0x13: t=2, m=2^16 KiB, p=1, "password", "somesalt".
  const std::string stored =
      "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
  CHECK(verify_password("password", stored));
  CHECK_FALSE(verify_password("passwore", stored));
  CHECK(stored_argon2_params(stored) == Argon2Params{65536, 2, 1});
}

TEST_CASE("PBKDF2 hashes made before Argon2id still verify") {
  // RFC 7914 §11: P="passwd", S="salt", c=1: the first 32 bytes of its output, base64url.
  const std::string stored = "pbkdf2-sha256$1$c2FsdA$VawEblbjCJ_sFpHCJUS2BflBhSFt3gRl5oudV8INrLw";
  CHECK(verify_password("passwd", stored));
  CHECK_FALSE(verify_password("passwe", stored));
  auto h = hash_password_pbkdf2("pw", 2000);
  REQUIRE(h.ok());
  CHECK(h->rfind("pbkdf2-sha256$2000$", 0) == 0);
  CHECK(stored_iterations(*h) == 2000);
  CHECK(verify_password("pw", *h));
  CHECK_FALSE(verify_password("pW", *h));
}

TEST_CASE(
    "a hash is re-hashed when it is PBKDF2 or its Argon2id costs differ from the configured ones") {
  auto pbkdf2 = hash_password_pbkdf2("pw", 1000);
  REQUIRE(pbkdf2.ok());
  CHECK(needs_rehash(*pbkdf2, kWeak));
  auto current = hash_password("pw", kWeak);
  REQUIRE(current.ok());
  CHECK_FALSE(needs_rehash(*current, kWeak));
  CHECK(needs_rehash(*current, Argon2Params{128, 1, 1}));  // memory raised
  CHECK(needs_rehash(*current, Argon2Params{64, 2, 1}));   // passes raised
  auto stronger = hash_password("pw", Argon2Params{128, 2, 1});
  REQUIRE(stronger.ok());
  CHECK(needs_rehash(*stronger, kWeak));  // lowered on purpose: the configured cost wins
  CHECK(needs_rehash("garbage", kWeak));
}

TEST_CASE("malformed stored strings never verify") {
  auto good = hash_password("x", kWeak);
  REQUIRE(good.ok());
  const std::string salt_and_hash =
      good->substr(std::string("$argon2id$v=19$m=64,t=1,p=1$").size());
  const std::string pbkdf2_hash = "VawEblbjCJ_sFpHCJUS2BflBhSFt3gRl5oudV8INrLw";
  for (std::string bad :
       {std::string(""), std::string("plain"), std::string("md5$1000$c2FsdA$AAAA"),
        // PBKDF2: not a number, zero, above the bound, short hash, extra part
        "pbkdf2-sha256$abc$c2FsdA$" + pbkdf2_hash, "pbkdf2-sha256$0$c2FsdA$" + pbkdf2_hash,
        "pbkdf2-sha256$99999999$c2FsdA$" + pbkdf2_hash,
        std::string("pbkdf2-sha256$1000$c2FsdA$short"),
        "pbkdf2-sha256$1$c2FsdA$" + pbkdf2_hash + "$extra",
        // Argon2: another variant or version, costs missing, out of order, out of range or not
        // canonical
        "$argon2i$v=19$m=64,t=1,p=1$" + salt_and_hash,
        "$argon2id$v=16$m=64,t=1,p=1$" + salt_and_hash, "$argon2id$m=64,t=1,p=1$" + salt_and_hash,
        "$argon2id$v=19$t=1,m=64,p=1$" + salt_and_hash, "$argon2id$v=19$m=64,t=1$" + salt_and_hash,
        "$argon2id$v=19$m=4194304,t=1,p=1$" + salt_and_hash,
        "$argon2id$v=19$m=64,t=1000,p=1$" + salt_and_hash,
        "$argon2id$v=19$m=64,t=0,p=1$" + salt_and_hash,
        "$argon2id$v=19$m=4,t=1,p=1$" + salt_and_hash,
        "$argon2id$v=19$m=064,t=1,p=1$" + salt_and_hash,
        "$argon2id$v=19$m=-64,t=1,p=1$" + salt_and_hash,
        // Argon2: salt or hash missing, too short, not base64 (base64url characters), extra part
        std::string("$argon2id$v=19$m=64,t=1,p=1$"),
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + salt_and_hash.substr(23),
        "$argon2id$v=19$m=64,t=1,p=1$" + salt_and_hash.substr(0, 23) + "AAAA",
        "$argon2id$v=19$m=64,t=1,p=1$" + salt_and_hash.substr(0, 23) + "-_" +
            salt_and_hash.substr(25),
        *good + "$extra"}) {
    CAPTURE(bad);
    CHECK_FALSE(verify_password("x", bad));
    CHECK_FALSE(stored_argon2_params(bad).has_value());
  }
}

TEST_CASE("the dummy check for unknown logins spends a check at the given cost and never matches") {
  CHECK_FALSE(verify_dummy("x", kWeak));
  CHECK_FALSE(verify_dummy("x", Argon2Params{}));
}
