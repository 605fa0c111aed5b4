// The proof a node of a site gives its chunk's owner (X-Site-Fetch): it holds for the node, the
// node it is addressed to, the target and the time it was made for, and for nothing else.
#include "signing/site_fetch.h"

#include <doctest/doctest.h>

#include <string>

using signing::site_fetch_header;
using signing::verify_site_fetch;

namespace {
const std::string kKey = "site-key-of-the-venue-0123";
const std::string kTarget = "/o/demo/live/seg42.ts?bexp=1767225900&bsig=abc";
constexpr int64_t kNow = 1767225600;
}  // namespace

TEST_CASE("site fetch: a node's proof names it, for the target and time it was made for") {
  const std::string header = site_fetch_header(kKey, "venue-a", "venue-b", kTarget, kNow);
  CHECK(header.rfind("venue-a 1767225660 ", 0) == 0);
  CHECK(verify_site_fetch(header, kKey, "venue-b", kTarget, kNow) == "venue-a");
  CHECK(verify_site_fetch(header, kKey, "venue-b", kTarget,
                          kNow + signing::kSiteFetchProofLifetimeS) == "venue-a");
  // Expired, another target, another key.
  CHECK_FALSE(verify_site_fetch(header, kKey, "venue-b", kTarget, kNow + 61).has_value());
  CHECK_FALSE(verify_site_fetch(header, kKey, "venue-b", kTarget + "x", kNow).has_value());
  CHECK_FALSE(verify_site_fetch(header, kKey + "x", "venue-b", kTarget, kNow).has_value());
}

TEST_CASE("site fetch: a proof holds only at the node it is addressed to") {
  const std::string header = site_fetch_header(kKey, "venue-a", "venue-b", kTarget, kNow);
  CHECK(verify_site_fetch(header, kKey, "venue-b", kTarget, kNow) == "venue-a");
  for (const char* receiver : {"venue-c", "venue-a", "", "venue-bb", "venue-"}) {
    CAPTURE(receiver);
    CHECK_FALSE(verify_site_fetch(header, kKey, receiver, kTarget, kNow).has_value());
  }
}

TEST_CASE("site fetch: a header a viewer writes proves nothing") {
  const std::string header = site_fetch_header(kKey, "venue-a", "venue-b", kTarget, kNow);
  for (const std::string& forged :
       {std::string("venue-a"), std::string("venue-a 1767225660"), std::string(""),
        std::string(" 1767225660 x"), "venue-b" + header.substr(7),  // another node's name
        header.substr(0, 8) + "9999999999" + header.substr(18),      // a later expiry
        header.substr(0, header.size() - 1),                         // a proof cut short
        header + "A", std::string("venue-a x1 ") + header.substr(19)}) {
    CAPTURE(forged);
    CHECK_FALSE(verify_site_fetch(forged, kKey, "venue-b", kTarget, kNow).has_value());
  }
}
