// The PostgreSQL account store on a real PostgreSQL 15 started by the test: the schema is
// migrated once (and a newer one refused), users, sessions and purchases round-trip, an
// idempotency key is unique in the database even when two connections (two balancers) record
// the same purchase at once, and while PostgreSQL is stopped every call fails quickly with
// storage_unavailable, then works again by itself once it is back.
#include <doctest/doctest.h>
#include <event2/event.h>

#include <optional>
#include <string>

#include "api/pg_accounts.h"
#include "api/token.h"
#include "core/event_loop.h"
#include "support/pg_server.h"

using namespace api;
using namespace std::chrono_literals;
using balancer::test::PgServer;

namespace {

PgServer& shared_pg() {
  static PgServer server;
  return server;
}

stores::PgOptions options_for(int port) {
  stores::PgOptions o;
  o.host = "127.0.0.1";
  o.port = static_cast<uint16_t>(port);
  o.dbname = "balancer";
  o.user = "balancer";
  o.timeout = 1000ms;
  return o;
}

// Runs `loop` until `value` is set or 10 s pass.
template <class T>
T run(core::EventLoop& loop, std::optional<T>& value) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!value && std::chrono::steady_clock::now() < deadline)
    event_base_loop(&loop.base(), EVLOOP_ONCE);
  REQUIRE(value.has_value());
  return std::move(*value);
}

struct Store {
  explicit Store(int port = shared_pg().port()) : loop(0), store({&loop}, options_for(port)) {}

  core::Result<User> add_user(const std::string& login) {
    std::optional<core::Result<User>> out;
    store.add_user(loop, login, "pbkdf2-sha256$1000$c2FsdA$x", 100,
                   [&](core::Result<User> r) { out = r; });
    return run(loop, out);
  }
  core::Result<PurchaseOutcome> buy(uint64_t user, const std::string& key,
                                    const std::string& product = "gold") {
    Purchase p;
    p.user_id = user;
    p.product_id = product;
    p.unlocks = {"demo-premium", "extra"};
    p.idempotency_key = key;
    p.receipt_ref = "demo:" + key;
    p.created_at = 1000;
    std::optional<core::Result<PurchaseOutcome>> out;
    store.create_purchase(loop, p, [&](core::Result<PurchaseOutcome> r) { out = r; });
    return run(loop, out);
  }

  core::EventLoop loop;
  PgAccounts store;
};

}  // namespace

TEST_CASE("the schema is created once, again is a no-op, and a newer one is refused naming it") {
  REQUIRE(migrate_pg_schema(options_for(shared_pg().port())).ok());
  REQUIRE(migrate_pg_schema(options_for(shared_pg().port())).ok());
  stores::PgOptions wrong = options_for(shared_pg().port());
  wrong.port = 1;
  const core::Status refused = migrate_pg_schema(wrong);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == "storage_unavailable");
  CHECK(refused.error().message.find("127.0.0.1:1/balancer") != std::string::npos);
}

TEST_CASE("users, sessions and purchases round-trip; a duplicate login is a conflict") {
  REQUIRE(migrate_pg_schema(options_for(shared_pg().port())).ok());
  Store s;
  auto u = s.add_user("alice");
  REQUIRE_MESSAGE(u.ok(), (u.ok() ? "" : u.error().message));
  auto again = s.add_user("alice");
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == "conflict");

  std::optional<core::Result<std::optional<User>>> found;
  s.store.find_user(s.loop, "alice", [&](auto r) { found = r; });
  auto f = run(s.loop, found);
  REQUIRE(f.ok());
  REQUIRE(f->has_value());
  CHECK((*f)->id == u->id);
  CHECK((*f)->password_hash == "pbkdf2-sha256$1000$c2FsdA$x");

  const std::string hash = token_hash("token-for-alice");  // raw bytes, NULs possible
  std::optional<core::Status> created;
  s.store.create_session(s.loop, Session{hash, u->id, 100, 200, 0},
                         [&](core::Status st) { created = st; });
  REQUIRE(run(s.loop, created).ok());
  std::optional<core::Result<std::optional<SessionInfo>>> session;
  s.store.find_session(s.loop, hash, [&](auto r) { session = r; });
  auto si = run(s.loop, session);
  REQUIRE(si.ok());
  REQUIRE(si->has_value());
  CHECK((*si)->session.token_hash == hash);
  CHECK((*si)->session.expires_at == 200);
  CHECK((*si)->user.login == "alice");

  auto first = s.buy(u->id, "key-1");
  REQUIRE(first.ok());
  CHECK(first->created);
  CHECK(first->purchase.unlocks == std::vector<std::string>{"demo-premium", "extra"});
  auto repeat = s.buy(u->id, "key-1", "other");
  REQUIRE(repeat.ok());
  CHECK_FALSE(repeat->created);
  CHECK(repeat->purchase.id == first->purchase.id);
  CHECK(repeat->purchase.product_id == "gold");
  auto second = s.buy(u->id, "key-2");
  REQUIRE(second.ok());
  std::optional<core::Result<std::vector<Purchase>>> list;
  s.store.list_purchases(s.loop, u->id, [&](auto r) { list = r; });
  auto l = run(s.loop, list);
  REQUIRE(l.ok());
  REQUIRE(l->size() == 2);
  CHECK((*l)[0].id == second->purchase.id);  // newest first

  // A refresh moves the expiry on, never back.
  std::optional<core::Result<bool>> extended;
  s.store.extend_session(s.loop, hash, 500, [&](auto r) { extended = r; });
  CHECK(run(s.loop, extended).value());
  extended.reset();
  s.store.extend_session(s.loop, hash, 300, [&](auto r) { extended = r; });
  CHECK(run(s.loop, extended).value());
  session.reset();
  s.store.find_session(s.loop, hash, [&](auto r) { session = r; });
  si = run(s.loop, session);
  REQUIRE((si.ok() && si->has_value()));
  CHECK((*si)->session.expires_at == 500);
  extended.reset();
  s.store.extend_session(s.loop, token_hash("no-such-token"), 500, [&](auto r) { extended = r; });
  CHECK_FALSE(run(s.loop, extended).value());

  // A re-hash at sign-in replaces the hash only while it is still the one that was checked.
  std::optional<core::Result<bool>> upgraded;
  s.store.upgrade_password_hash(s.loop, u->id, "pbkdf2-sha256$1000$c2FsdA$x", "$argon2id$new",
                                [&](auto r) { upgraded = r; });
  CHECK(run(s.loop, upgraded).value());
  upgraded.reset();
  s.store.upgrade_password_hash(s.loop, u->id, "pbkdf2-sha256$1000$c2FsdA$x", "$argon2id$other",
                                [&](auto r) { upgraded = r; });
  CHECK_FALSE(run(s.loop, upgraded).value());
  found.reset();
  s.store.find_user(s.loop, "alice", [&](auto r) { found = r; });
  f = run(s.loop, found);
  REQUIRE((f.ok() && f->has_value()));
  CHECK((*f)->password_hash == "$argon2id$new");

  std::optional<core::Result<bool>> revoked;
  s.store.revoke_session(s.loop, hash, [&](auto r) { revoked = r; });
  CHECK(run(s.loop, revoked).value());
  revoked.reset();
  s.store.revoke_session(s.loop, hash, [&](auto r) { revoked = r; });
  CHECK_FALSE(run(s.loop, revoked).value());
}

TEST_CASE("two connections recording the same idempotency key at once store one purchase") {
  REQUIRE(migrate_pg_schema(options_for(shared_pg().port())).ok());
  Store a, b;
  auto u = a.add_user("racer");
  REQUIRE(u.ok());
  for (int round = 0; round < 20; ++round) {
    const std::string key = "race-" + std::to_string(round);
    Purchase p;
    p.user_id = u->id;
    p.product_id = "gold";
    p.idempotency_key = key;
    p.created_at = 1;
    std::optional<core::Result<PurchaseOutcome>> ra, rb;
    a.store.create_purchase(a.loop, p, [&](auto r) { ra = r; });
    b.store.create_purchase(b.loop, p, [&](auto r) { rb = r; });
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while ((!ra || !rb) && std::chrono::steady_clock::now() < deadline) {
      event_base_loop(&a.loop.base(), EVLOOP_NONBLOCK);
      event_base_loop(&b.loop.base(), EVLOOP_NONBLOCK);
    }
    REQUIRE(ra.has_value());
    REQUIRE(rb.has_value());
    REQUIRE(ra->ok());
    REQUIRE(rb->ok());
    CHECK((*ra)->purchase.id == (*rb)->purchase.id);
    CHECK(int((*ra)->created) + int((*rb)->created) == 1);
  }
}

TEST_CASE(
    "PostgreSQL stopped: calls fail quickly with storage_unavailable; back: they work by "
    "themselves") {
  PgServer own;
  REQUIRE(migrate_pg_schema(options_for(own.port())).ok());
  Store s(own.port());
  auto u = s.add_user("bob");
  REQUIRE(u.ok());
  REQUIRE(s.buy(u->id, "before").ok());

  own.stop();
  const auto asked = std::chrono::steady_clock::now();
  auto down = s.buy(u->id, "during");
  REQUIRE_FALSE(down.ok());
  CHECK(down.error().code == "storage_unavailable");
  CHECK(std::chrono::steady_clock::now() - asked < 3s);

  REQUIRE(own.restart());
  std::optional<std::vector<Purchase>> listed;
  const bool back = balancer::test::wait_until(
      [&] {
        std::optional<core::Result<std::vector<Purchase>>> list;
        s.store.list_purchases(s.loop, u->id, [&](auto r) { list = r; });
        auto r = run(s.loop, list);
        if (r.ok()) listed = std::move(r).value();
        return r.ok();
      },
      15s, 100ms);
  REQUIRE(back);
  CHECK(listed->size() == 1);  // the purchase before the outage is there; the failed one is not
}
