// Where accounts live (DESIGN.md "Stores"): users, sessions, purchases and the
// clients' idempotency keys. Every
// call completes through a callback run on the loop named in the call (posted,
// never inline), so a networked backend (PostgreSQL) can implement it later
// without touching the handlers. A write is reported ok only once committed.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/products.h"
#include "core/event_loop.h"
#include "core/result.h"

namespace api {

// Schema version the LMDB backend writes and understands (meta key "schema_version").
// 1: users, sessions. 2: + purchases (a version-1 store is upgraded on open).
inline constexpr int kSchemaVersion = 2;

// A login is 1 to 64 of A-Z a-z 0-9 . _ - @ + (the server and `balancer user` agree).
inline bool valid_login(std::string_view login) {
  if (login.empty() || login.size() > 64) return false;
  for (char c : login) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '@' || c == '+';
    if (!ok) return false;
  }
  return true;
}

struct User {
  uint64_t id = 0;
  std::string login;
  std::string password_hash;  // api/password.h format; never logged
  bool disabled = false;
  int64_t created_at = 0;  // unix seconds
  // Raised by passwd and disable: a session is valid only with its user's current epoch, so a
  // login whose password check began before the change can never outlive it.
  uint64_t session_epoch = 0;
};

struct Session {
  std::string token_hash;  // SHA-256 of the token, 32 raw bytes
  uint64_t user_id = 0;
  int64_t created_at = 0;
  int64_t expires_at = 0;
  uint64_t user_epoch = 0;  // the user's session_epoch when the login's user record was read
};

// A session with its user, as a session lookup returns it.
struct SessionInfo {
  Session session;
  User user;
};

// What recording a purchase did: a new purchase, or the one the same user made
// earlier with the same idempotency key.
struct PurchaseOutcome {
  Purchase purchase;
  bool created = false;
};

template <class T>
using StoreCallback = std::function<void(core::Result<T>)>;
using StoreDone = std::function<void(core::Status)>;

class AccountStore {
 public:
  virtual ~AccountStore() = default;
  // Any loop thread; `done` runs later on `back`'s thread. Errors: "storage_error".
  virtual void find_user(core::EventLoop& back, std::string login,
                         StoreCallback<std::optional<User>> done) = 0;
  // Committed before `done` is told ok.
  virtual void create_session(core::EventLoop& back, Session session, StoreDone done) = 0;
  // The session whose stored hash equals `token_hash` (compared in constant
  // time) with its user, or nullopt. Expiry is the caller's decision.
  virtual void find_session(core::EventLoop& back, std::string token_hash,
                            StoreCallback<std::optional<SessionInfo>> done) = 0;
  // True when a session was removed (committed), false when there was none.
  virtual void revoke_session(core::EventLoop& back, std::string token_hash,
                              StoreCallback<bool> done) = 0;
  // Moves the session's expiry to `expires_at` unless it is already later (a refresh; committed
  // before `done`). True when the session exists.
  virtual void extend_session(core::EventLoop& back, std::string token_hash, int64_t expires_at,
                              StoreCallback<bool> done) = 0;
  // Replaces user `user_id`'s password hash by `new_hash` (the same password hashed at the
  // current cost, after a successful sign-in) only while the stored hash is still `old_hash`, so
  // a password change meanwhile wins. Sessions stay valid (the epoch is not raised). True when
  // replaced (committed).
  virtual void upgrade_password_hash(core::EventLoop& back, uint64_t user_id, std::string old_hash,
                                     std::string new_hash, StoreCallback<bool> done) = 0;

  // Records `purchase` with a new id, in one transaction with its idempotency key
  // (unique per user): when the user already used that key, nothing is written
  // and the earlier purchase comes back with created == false. Committed before
  // `done` is told ok.
  virtual void create_purchase(core::EventLoop& back, Purchase purchase,
                               StoreCallback<PurchaseOutcome> done) = 0;
  // The purchase `user_id` made with `idempotency_key`, or nullopt.
  virtual void find_purchase_by_key(core::EventLoop& back, uint64_t user_id,
                                    std::string idempotency_key,
                                    StoreCallback<std::optional<Purchase>> done) = 0;
  // The purchase with `id` (any user's: the caller checks the owner), or nullopt.
  virtual void find_purchase(core::EventLoop& back, uint64_t id,
                             StoreCallback<std::optional<Purchase>> done) = 0;
  // Every purchase of `user_id`, newest first.
  virtual void list_purchases(core::EventLoop& back, uint64_t user_id,
                              StoreCallback<std::vector<Purchase>> done) = 0;
  // Deletes up to `max` sessions that expired before `now_unix`; how many went.
  virtual void purge_expired_sessions(core::EventLoop& back, int64_t now_unix, size_t max,
                                      StoreCallback<size_t> done) = 0;
};

}  // namespace api
