#include <doctest/doctest.h>

#include "signing/url_signing.h"

using signing::SignatureVerdict;
using signing::UrlSigner;

namespace {
const std::string kCurrent = "current-key-0123456789";
const std::string kPrevious = "previous-key-0123456789";
}  // namespace

TEST_CASE("signing: a signed URL verifies until it expires") {
  auto signer = UrlSigner::create({kCurrent});
  REQUIRE(signer.ok());
  std::string url = signer->sign("/o/demo/live/seg1.ts", 1000);
  CHECK(url.find("/o/demo/live/seg1.ts?bexp=1000&bsig=") == 0);
  std::string unsigned_target;
  CHECK(signer->verify(url, 999, &unsigned_target) == SignatureVerdict::ok);
  CHECK(unsigned_target == "/o/demo/live/seg1.ts");
  CHECK(signer->verify(url, 1000) == SignatureVerdict::ok);
  CHECK(signer->verify(url, 1001) == SignatureVerdict::expired);
}

TEST_CASE("signing: missing, malformed and tampered signatures are told apart") {
  auto signer = UrlSigner::create({kCurrent});
  REQUIRE(signer.ok());
  CHECK(signer->verify("/o/demo/a.ts", 0) == SignatureVerdict::missing);
  CHECK(signer->verify("/o/demo/a.ts?bexp=abc&bsig=x", 0) == SignatureVerdict::malformed);
  std::string url = signer->sign("/o/demo/a.ts", 5000);
  std::string other_path = url;
  other_path.replace(other_path.find("a.ts"), 4, "b.ts");
  CHECK(signer->verify(other_path, 0) == SignatureVerdict::bad_signature);
  std::string later = url;
  later.replace(later.find("5000"), 4, "9000");
  CHECK(signer->verify(later, 0) == SignatureVerdict::bad_signature);
  std::string flipped = url;
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  CHECK(signer->verify(flipped, 0) == SignatureVerdict::bad_signature);
}

TEST_CASE("signing: the origin query is covered and kept; signature parameters are stripped") {
  auto signer = UrlSigner::create({kCurrent});
  REQUIRE(signer.ok());
  std::string url = signer->sign("/o/demo/a.ts?token=1&x=2", 100);
  std::string unsigned_target;
  CHECK(signer->verify(url, 0, &unsigned_target) == SignatureVerdict::ok);
  CHECK(unsigned_target == "/o/demo/a.ts?token=1&x=2");
  std::string changed = url;
  changed.replace(changed.find("token=1"), 7, "token=2");
  CHECK(signer->verify(changed, 0) == SignatureVerdict::bad_signature);
  auto split = signing::split_signed_target("/p?a=1&bexp=5&b=2&bsig=zz");
  CHECK(split.unsigned_target == "/p?a=1&b=2");
  CHECK(split.expires == "5");
  CHECK(split.signature == "zz");
}

TEST_CASE("signing: two keys rotate — the first signs, both verify, others do not") {
  auto old_signer = UrlSigner::create({kPrevious});
  auto rotated = UrlSigner::create({kCurrent, kPrevious});
  auto unrelated = UrlSigner::create({"unrelated-key-0123456789"});
  REQUIRE(old_signer.ok());
  REQUIRE(rotated.ok());
  REQUIRE(unrelated.ok());
  std::string by_old = old_signer->sign("/o/demo/a.ts", 100);
  CHECK(rotated->verify(by_old, 0) == SignatureVerdict::ok);
  CHECK(rotated->verify(rotated->sign("/o/demo/a.ts", 100), 0) == SignatureVerdict::ok);
  CHECK(unrelated->verify(by_old, 0) == SignatureVerdict::bad_signature);
}

TEST_CASE("signing: keys must exist and be long enough") {
  CHECK_FALSE(UrlSigner::create({}).ok());
  CHECK_FALSE(UrlSigner::create({"short"}).ok());
}

TEST_CASE("signing: awkward targets sign to their canonical form and round-trip through verify") {
  auto signer = UrlSigner::create({kCurrent});
  REQUIRE(signer.ok());
  struct Case {
    const char* input;
    const char* canonical;
  };
  const Case cases[] = {
      {"/o/demo/x.ts", "/o/demo/x.ts"},
      {"/o/demo/x.ts?", "/o/demo/x.ts"},  // empty query
      {"/o/demo/x.ts?&&", "/o/demo/x.ts"},
      {"/o/demo/x.ts?a=1&&b=2&", "/o/demo/x.ts?a=1&b=2"},        // repeated and trailing '&'
      {"/o/demo/x.ts?bexp=5&a=1&bsig=old", "/o/demo/x.ts?a=1"},  // stale signature params
      {"/o/demo/x.ts?bexp&bsig", "/o/demo/x.ts"},
      {"/o/demo/x.ts?a=&b&=c", "/o/demo/x.ts?a=&b&=c"},  // empty values and names kept
      {"/o/demo/a%20b%2Fc.ts?q=%2F%3D+x&u=a?b",
       "/o/demo/a%20b%2Fc.ts?q=%2F%3D+x&u=a?b"},         // kept as written
      {"/o/demo/x.ts?a=1&a=1", "/o/demo/x.ts?a=1&a=1"},  // repeated names kept
  };
  for (const Case& c : cases) {
    CAPTURE(c.input);
    CHECK(signing::canonical_unsigned_target(c.input) == c.canonical);
    std::string url = signer->sign(c.input, 500);
    CHECK(url.rfind(std::string(c.canonical) +
                        (std::string(c.canonical).find('?') == std::string::npos ? "?" : "&") +
                        "bexp=500&bsig=",
                    0) == 0);
    std::string unsigned_target;
    CHECK(signer->verify(url, 0, &unsigned_target) == SignatureVerdict::ok);
    CHECK(unsigned_target == c.canonical);
  }
}

TEST_CASE(
    "signing: sign and verify normalise the same way, so what differs only in normalisation signs "
    "alike") {
  auto signer = UrlSigner::create({kCurrent});
  REQUIRE(signer.ok());
  const char* variants[] = {"/o/demo/x.ts?a=1", "/o/demo/x.ts?a=1&", "/o/demo/x.ts?&a=1",
                            "/o/demo/x.ts?a=1&&bexp=1", "/o/demo/x.ts?bsig=zz&a=1"};
  const std::string reference = signer->sign("/o/demo/x.ts?a=1", 700);
  for (const char* variant : variants) {
    CAPTURE(variant);
    // Signing depends on the canonical form only...
    CHECK(signer->sign(variant, 700) == reference);
    // ...and the canonical form of a signed URL is what was signed, so the
    // verifier recomputes the same MAC.
    CHECK(signing::canonical_unsigned_target(signer->sign(variant, 700)) ==
          signing::canonical_unsigned_target(variant));
    CHECK(signing::split_signed_target(signer->sign(variant, 700)).unsigned_target ==
          signing::canonical_unsigned_target(variant));
  }
  // The verifier normalises what the client sends the same way: a link that
  // gained an empty pair on the way still verifies.
  std::string padded = reference;
  padded.insert(padded.find("bexp"), "&");
  CHECK(signer->verify(padded + "&", 0) == SignatureVerdict::ok);
}
