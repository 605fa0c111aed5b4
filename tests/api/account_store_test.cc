// The LMDB account store on real files in a temp dir: users and sessions
// survive reopening, a write reported ok is on disk, the schema version is
// written and a newer one is refused, and the asynchronous store answers on
// the caller's loop.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "api/lmdb_accounts.h"
#include "api/token.h"
#include "stores/lmdb.h"
#include "support/process.h"

using namespace api;
using balancer::test::TempDir;

namespace {

std::unique_ptr<LmdbAccounts> open_ok(const std::string& dir) {
  auto a = LmdbAccounts::open(dir);
  REQUIRE_MESSAGE(a.ok(), (a.ok() ? "" : a.error().message));
  return std::move(a).value();
}

void set_schema_version(const std::string& dir, const std::string& version) {
  auto env = stores::LmdbEnv::open(dir, size_t{1} << 30, 8);
  REQUIRE(env.ok());
  auto txn = stores::LmdbTxn::begin(*env, false);
  REQUIRE(txn.ok());
  MDB_dbi meta;
  REQUIRE(mdb_dbi_open(txn->get(), "meta", MDB_CREATE, &meta) == 0);
  MDB_val k = stores::mdb_val("schema_version"), v = stores::mdb_val(version);
  REQUIRE(mdb_put(txn->get(), meta, &k, &v, 0) == 0);
  REQUIRE(txn->commit().ok());
}

}  // namespace

TEST_CASE("users and sessions written and reported ok are there after reopening") {
  TempDir dir("api-store");
  const std::string path = dir.file("accounts");
  std::string hash = token_hash("token-1");
  {
    auto a = open_ok(path);
    auto u = a->add_user("fdpd6", "pbkdf2-sha256$1000$c2FsdA$x", 100);
    REQUIRE(u.ok());
    CHECK(u->id == 1);
    auto u2 = a->add_user("second", "h2", 101);
    REQUIRE(u2.ok());
    CHECK(u2->id == 2);
    REQUIRE(a->put_session(Session{hash, u->id, 100, 200}).ok());
  }
  auto a = open_ok(path);
  auto u = a->find_user("fdpd6");
  REQUIRE(u.ok());
  REQUIRE(u->has_value());
  CHECK((*u)->id == 1);
  CHECK((*u)->password_hash == "pbkdf2-sha256$1000$c2FsdA$x");
  CHECK((*u)->created_at == 100);
  auto by_id = a->find_user_by_id(2);
  REQUIRE(by_id.ok());
  REQUIRE(by_id->has_value());
  CHECK((*by_id)->login == "second");
  auto s = a->find_session(hash);
  REQUIRE(s.ok());
  REQUIRE(s->has_value());
  CHECK((*s)->session.user_id == 1);
  CHECK((*s)->session.expires_at == 200);
  CHECK((*s)->user.login == "fdpd6");
  auto list = a->list_users();
  REQUIRE(list.ok());
  CHECK(list->size() == 2);
  // ids keep counting after a reopen
  auto u3 = a->add_user("third", "h3", 102);
  REQUIRE(u3.ok());
  CHECK(u3->id == 3);
}

TEST_CASE("a duplicate login is a conflict and changes nothing") {
  TempDir dir("api-store");
  auto a = open_ok(dir.file("accounts"));
  REQUIRE(a->add_user("alice", "h1", 1).ok());
  auto again = a->add_user("alice", "h2", 2);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == "conflict");
  CHECK(a->find_user("alice").value()->password_hash == "h1");
  CHECK(a->list_users()->size() == 1);
}

TEST_CASE("revoked sessions are gone; unknown ones report false; expired ones can be purged") {
  TempDir dir("api-store");
  auto a = open_ok(dir.file("accounts"));
  auto u = a->add_user("alice", "h", 1);
  REQUIRE(u.ok());
  REQUIRE(a->put_session(Session{token_hash("a"), u->id, 1, 50}).ok());
  REQUIRE(a->put_session(Session{token_hash("b"), u->id, 1, 500}).ok());
  CHECK(a->delete_session(token_hash("b")).value() == true);
  CHECK(a->delete_session(token_hash("b")).value() == false);
  CHECK_FALSE(a->find_session(token_hash("b"))->has_value());
  REQUIRE(a->put_session(Session{token_hash("c"), u->id, 1, 500}).ok());
  CHECK(a->purge_expired(100, 10).value() == 1);
  CHECK_FALSE(a->find_session(token_hash("a"))->has_value());
  CHECK(a->find_session(token_hash("c"))->has_value());
}

TEST_CASE("updating a user (disable, new password) is kept") {
  TempDir dir("api-store");
  const std::string path = dir.file("accounts");
  {
    auto a = open_ok(path);
    auto u = a->add_user("alice", "h", 1);
    REQUIRE(u.ok());
    User changed = *u;
    changed.disabled = true;
    changed.password_hash = "h2";
    changed.session_epoch = 9;
    REQUIRE(a->update_user(changed).ok());
    User ghost = changed;
    ghost.login = "ghost";
    CHECK(a->update_user(ghost).error().code == "not_found");
  }
  auto a = open_ok(path);
  auto u = a->find_user("alice").value();
  REQUIRE(u.has_value());
  CHECK(u->disabled);
  CHECK(u->password_hash == "h2");
  CHECK(u->session_epoch == 9);
}

TEST_CASE("the store writes its schema version and refuses a newer one with a clear error") {
  TempDir dir("api-store");
  const std::string path = dir.file("accounts");
  { open_ok(path); }
  { open_ok(path); }  // its own version opens again
  set_schema_version(path, std::to_string(kSchemaVersion + 1));
  auto a = LmdbAccounts::open(path);
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().code == "storage_error");
  CHECK(a.error().message.find("schema version " + std::to_string(kSchemaVersion + 1)) !=
        std::string::npos);
  CHECK(a.error().message.find(path) != std::string::npos);
  set_schema_version(path, "banana");
  auto b = LmdbAccounts::open(path);
  REQUIRE_FALSE(b.ok());
  CHECK(b.error().message.find("unreadable schema version") != std::string::npos);
}

TEST_CASE("a missing directory is created, owner-only; an unusable one is refused naming it") {
  TempDir dir("api-store");
  const std::string fresh = dir.file("not/yet/there/accounts");
  open_ok(fresh);
  CHECK(std::filesystem::status(fresh).permissions() == std::filesystem::perms::owner_all);
  std::ofstream(dir.file("a-file")) << "x";
  auto a = LmdbAccounts::open(dir.file("a-file/accounts"));
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().message.find("a-file/accounts") != std::string::npos);
}

TEST_CASE("the asynchronous store runs off the loop and answers on the caller's loop") {
  TempDir dir("api-store");
  auto accounts = open_ok(dir.file("accounts"));
  REQUIRE(accounts->add_user("alice", "h", 1).ok());
  auto store = make_lmdb_account_store(std::move(accounts));
  core::EventLoop loop(0);
  std::thread runner([&] { loop.run(); });
  std::promise<void> done;
  std::thread::id answered_on, loop_thread;
  bool found = false, revoked = false, gone = false;
  loop.post([&] {
    loop_thread = std::this_thread::get_id();
    store->find_user(loop, "alice", [&](core::Result<std::optional<User>> r) {
      answered_on = std::this_thread::get_id();
      found = r.ok() && r->has_value();
      store->create_session(loop, Session{token_hash("t"), 1, 1, 1000}, [&](core::Status s) {
        REQUIRE(s.ok());
        store->revoke_session(loop, token_hash("t"), [&](core::Result<bool> r2) {
          revoked = r2.ok() && *r2;
          store->find_session(loop, token_hash("t"),
                              [&](core::Result<std::optional<SessionInfo>> r3) {
                                gone = r3.ok() && !r3->has_value();
                                done.set_value();
                              });
        });
      });
    });
  });
  done.get_future().wait();
  loop.stop();
  runner.join();
  CHECK(found);
  CHECK(revoked);
  CHECK(gone);
  CHECK(answered_on == loop_thread);
}

namespace {

Purchase purchase_of(uint64_t user, const std::string& product, const std::string& key,
                     int64_t at) {
  Purchase p;
  p.user_id = user;
  p.product_id = product;
  p.kind = ProductKind::channel;
  p.unlocks = {"premium"};
  p.idempotency_key = key;
  p.receipt_ref = "demo-0011";
  p.created_at = at;
  p.expires_at = at + 100;
  return p;
}

}  // namespace

TEST_CASE("a purchase is recorded once per user and idempotency key and survives reopening") {
  TempDir dir("api-store");
  const std::string path = dir.file("accounts");
  uint64_t first_id = 0;
  {
    auto a = open_ok(path);
    auto made = a->add_purchase(purchase_of(1, "pass", "k-1", 1000));
    REQUIRE(made.ok());
    CHECK(made->created);
    first_id = made->purchase.id;
    CHECK(first_id > 0);
    // The same key again: the earlier purchase, nothing new.
    auto again = a->add_purchase(purchase_of(1, "other", "k-1", 2000));
    REQUIRE(again.ok());
    CHECK_FALSE(again->created);
    CHECK(again->purchase.id == first_id);
    CHECK(again->purchase.product_id == "pass");
    CHECK(again->purchase.created_at == 1000);
    // The same key for another user is that user's own purchase.
    auto other_user = a->add_purchase(purchase_of(2, "pass", "k-1", 1500));
    REQUIRE(other_user.ok());
    CHECK(other_user->created);
    CHECK(other_user->purchase.id != first_id);
    auto second = a->add_purchase(purchase_of(1, "pass", "k-2", 3000));
    REQUIRE(second.ok());
    CHECK(second->created);
  }
  auto a = open_ok(path);
  auto list = a->list_purchases(1);
  REQUIRE(list.ok());
  REQUIRE(list->size() == 2);
  CHECK((*list)[0].idempotency_key == "k-2");  // newest first
  CHECK((*list)[1].id == first_id);
  CHECK((*list)[1].unlocks == std::vector<std::string>{"premium"});
  CHECK((*list)[1].expires_at == 1100);
  CHECK((*list)[1].receipt_ref == "demo-0011");
  CHECK(a->list_purchases(2)->size() == 1);
  CHECK(a->list_purchases(3)->empty());
  auto by_key = a->find_purchase_by_key(1, "k-1");
  REQUIRE(by_key.ok());
  REQUIRE(by_key->has_value());
  CHECK((**by_key).id == first_id);
  CHECK_FALSE(a->find_purchase_by_key(1, "k-9")->has_value());
  CHECK_FALSE(a->find_purchase_by_key(3, "k-1")->has_value());
  auto by_id = a->find_purchase(first_id);
  REQUIRE(by_id.ok());
  REQUIRE(by_id->has_value());
  CHECK((**by_id).user_id == 1);
  CHECK_FALSE(a->find_purchase(999)->has_value());
}

TEST_CASE("a version-1 store (users and sessions only) is upgraded in place and keeps its users") {
  TempDir dir("api-store");
  const std::string path = dir.file("accounts");
  {
    auto a = open_ok(path);
    REQUIRE(a->add_user("alice", "h", 1).ok());
  }
  set_schema_version(path, "1");
  {
    auto a = open_ok(path);
    CHECK(a->find_user("alice").value().has_value());
    CHECK(a->add_purchase(purchase_of(1, "pass", "k", 5)).ok());
  }
  // Written back as the current version: a newer build's marker is what a later open reads.
  auto env = stores::LmdbEnv::open(path, size_t{1} << 30, 8);
  REQUIRE(env.ok());
  auto txn = stores::LmdbTxn::begin(*env, true);
  REQUIRE(txn.ok());
  MDB_dbi meta;
  REQUIRE(mdb_dbi_open(txn->get(), "meta", 0, &meta) == 0);
  MDB_val k = stores::mdb_val("schema_version"), v{};
  REQUIRE(mdb_get(txn->get(), meta, &k, &v) == 0);
  CHECK(stores::to_view(v) == std::to_string(kSchemaVersion));
}

TEST_CASE("a refresh moves a session's expiry on (never back), and a missing session says so") {
  TempDir dir("api-store");
  auto a = open_ok(dir.file("accounts"));
  auto u = a->add_user("alice", "h", 100);
  REQUIRE(u.ok());
  const std::string hash = token_hash("token-refresh");
  REQUIRE(a->put_session(Session{hash, u->id, 100, 200, 0}).ok());
  auto moved = a->extend_session(hash, 500);
  REQUIRE(moved.ok());
  CHECK(*moved);
  auto s = a->find_session(hash);
  REQUIRE((s.ok() && s->has_value()));
  CHECK((*s)->session.expires_at == 500);
  CHECK((*s)->session.created_at == 100);
  auto earlier = a->extend_session(hash, 300);
  REQUIRE(earlier.ok());
  CHECK(*earlier);
  s = a->find_session(hash);
  REQUIRE((s.ok() && s->has_value()));
  CHECK((*s)->session.expires_at == 500);
  auto missing = a->extend_session(token_hash("no-such-token"), 500);
  REQUIRE(missing.ok());
  CHECK_FALSE(*missing);
}

TEST_CASE("a re-hash replaces the stored hash only while it is still the one that was checked") {
  TempDir dir("api-store");
  auto a = open_ok(dir.file("accounts"));
  auto u = a->add_user("alice", "pbkdf2-old", 100);
  REQUIRE(u.ok());
  auto replaced = a->replace_password_hash(u->id, "pbkdf2-old", "$argon2id$new");
  REQUIRE(replaced.ok());
  CHECK(*replaced);
  auto found = a->find_user("alice");
  REQUIRE((found.ok() && found->has_value()));
  CHECK((*found)->password_hash == "$argon2id$new");
  CHECK((*found)->session_epoch == 0);  // sessions stay valid
  // A passwd meanwhile (the stored hash is no longer the checked one): nothing changes.
  auto stale = a->replace_password_hash(u->id, "pbkdf2-old", "$argon2id$other");
  REQUIRE(stale.ok());
  CHECK_FALSE(*stale);
  found = a->find_user("alice");
  REQUIRE((found.ok() && found->has_value()));
  CHECK((*found)->password_hash == "$argon2id$new");
  auto unknown = a->replace_password_hash(99, "x", "y");
  REQUIRE(unknown.ok());
  CHECK_FALSE(*unknown);
}
