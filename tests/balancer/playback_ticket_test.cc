// Playback tickets: issue/verify, expiry, tampering, channel scope, key rotation.
#include "signing/playback_ticket.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

const std::string kKey = "ticket-key-current-000001";
const std::string kOldKey = "ticket-key-previous-00000";
constexpr int64_t kNow = 1'800'000'000;

signing::PlaybackTickets tickets(std::vector<std::string> keys = {kKey}) {
  auto t = signing::PlaybackTickets::create(std::move(keys));
  REQUIRE(t.ok());
  return std::move(t).value();
}

std::string issue(const signing::PlaybackTickets& t, std::string channel, std::string viewer,
                  int64_t expires) {
  auto token = t.issue({std::move(channel), std::move(viewer), expires});
  REQUIRE(token.ok());
  return std::move(token).value();
}

std::string code(const core::Result<signing::PlaybackTicket>& r) {
  return r.ok() ? "ok" : r.error().code;
}

TEST_CASE("a valid ticket verifies and names its viewer and channel") {
  auto t = tickets();
  std::string token = issue(t, "demo", "user-42", kNow + 60);
  auto v = t.verify(token, "demo", kNow);
  REQUIRE(v.ok());
  CHECK(v->viewer == "user-42");
  CHECK(v->channel == "demo");
  CHECK(v->expires_unix == kNow + 60);
  // URL-safe: no characters that need escaping in a query.
  CHECK(token.find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") ==
        std::string::npos);
}

TEST_CASE("an expired ticket is refused; the expiry second itself is still valid") {
  auto t = tickets();
  std::string token = issue(t, "demo", "v", kNow);
  CHECK(code(t.verify(token, "demo", kNow)) == "ok");
  CHECK(code(t.verify(token, "demo", kNow + 1)) == "ticket_expired");
}

TEST_CASE("a ticket for another channel is refused; '*' grants every channel") {
  auto t = tickets();
  CHECK(code(t.verify(issue(t, "demo", "v", kNow + 60), "premium", kNow)) ==
        "ticket_wrong_channel");
  std::string all = issue(t, "*", "v", kNow + 60);
  CHECK(code(t.verify(all, "premium", kNow)) == "ok");
  CHECK(code(t.verify(all, "demo", kNow)) == "ok");
}

TEST_CASE("any change to a ticket is detected") {
  auto t = tickets();
  std::string token = issue(t, "demo", "viewer-1", kNow + 60);
  size_t dot = token.find('.');
  // Flip each character of the payload and of the signature in turn.
  for (size_t i = 0; i < token.size(); ++i) {
    if (i == dot) continue;
    std::string tampered = token;
    tampered[i] = tampered[i] == 'A' ? 'B' : 'A';
    std::string c = code(t.verify(tampered, "demo", kNow));
    CHECK_MESSAGE((c == "ticket_invalid" || c == "ticket_malformed"), "position ", i, ": ", c);
  }
  // A forged payload (other channel, later expiry) with the old signature.
  std::string forged =
      signing::base64url_encode("1\n" + std::to_string(kNow + 9999) + "\npremium\nviewer-1") +
      token.substr(dot);
  CHECK(code(t.verify(forged, "premium", kNow)) == "ticket_invalid");
  // A ticket signed with a key we do not hold.
  auto other = tickets({"some-other-issuer-key-0001"});
  CHECK(code(t.verify(issue(other, "demo", "v", kNow + 60), "demo", kNow)) == "ticket_invalid");
}

TEST_CASE("malformed tickets are refused without crashing") {
  auto t = tickets();
  for (const char* bad : {"", ".", "abc", "abc.", ".abc", "a.b.c", "!!!.???", "YWJj.=="}) {
    CHECK_MESSAGE(code(t.verify(bad, "demo", kNow)) == "ticket_malformed", bad);
  }
  CHECK(code(t.verify(std::string(5000, 'A') + ".AAAA", "demo", kNow)) == "ticket_malformed");
}

TEST_CASE("rotation: the first key issues, every configured key verifies") {
  auto old_only = tickets({kOldKey});
  std::string old_token = issue(old_only, "demo", "v", kNow + 60);
  auto rotated = tickets({kKey, kOldKey});
  CHECK(code(rotated.verify(old_token, "demo", kNow)) == "ok");
  std::string new_token = issue(rotated, "demo", "v", kNow + 60);
  CHECK(code(tickets({kKey}).verify(new_token, "demo", kNow)) == "ok");
  CHECK(code(old_only.verify(new_token, "demo", kNow)) == "ticket_invalid");
  // Once the old key is dropped, its tickets stop working.
  CHECK(code(tickets({kKey}).verify(old_token, "demo", kNow)) == "ticket_invalid");
}

TEST_CASE("keys and ids are validated") {
  CHECK_FALSE(signing::PlaybackTickets::create({}).ok());
  CHECK_FALSE(signing::PlaybackTickets::create({"short"}).ok());
  auto t = tickets();
  CHECK_FALSE(t.issue({"bad channel", "v", kNow}).ok());
  CHECK_FALSE(t.issue({"demo", "", kNow}).ok());
  CHECK_FALSE(t.issue({"demo", "has space", kNow}).ok());
  CHECK_FALSE(t.issue({"demo", std::string(129, 'v'), kNow}).ok());
  CHECK(signing::valid_viewer_id(std::string(128, 'v')));
}

TEST_CASE("base64url round-trips and rejects non-canonical text") {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba",
                                                       "foobar", std::string("\0\xff\xfe", 3)}) {
    std::string decoded;
    REQUIRE(signing::base64url_decode(signing::base64url_encode(s), decoded));
    CHECK(decoded == s);
  }
  std::string out;
  CHECK_FALSE(signing::base64url_decode("Zm9v=", out));  // padding
  CHECK_FALSE(signing::base64url_decode("Zm9v+", out));  // standard alphabet
  CHECK_FALSE(signing::base64url_decode("Zh", out));  // non-zero trailing bits ("Zg" is canonical)
  CHECK_FALSE(signing::base64url_decode("A", out));
}

}  // namespace
