// Where accounts live (DESIGN.md "Stores"): users and sessions today; purchases
// and idempotency keys join this interface with the purchase endpoints. Every
// call completes through a callback run on the loop named in the call (posted,
// never inline), so a networked backend (PostgreSQL) can implement it later
// without touching the handlers. A write is reported ok only once committed.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/event_loop.h"
#include "common/result.h"

namespace api {

// Schema version the LMDB backend writes and understands (meta key "schema_version").
inline constexpr int kSchemaVersion = 1;

struct User {
  uint64_t id = 0;
  std::string login;
  std::string password_hash;  // api/password.h format; never logged
  bool disabled = false;
  int64_t created_at = 0;     // unix seconds
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

template <class T>
using StoreCallback = std::function<void(common::Result<T>)>;
using StoreDone = std::function<void(common::Status)>;

class AccountStore {
 public:
  virtual ~AccountStore() = default;
  // Any loop thread; `done` runs later on `back`'s thread. Errors: "storage_error".
  virtual void find_user(common::EventLoop& back, std::string login, StoreCallback<std::optional<User>> done) = 0;
  // Committed before `done` is told ok.
  virtual void create_session(common::EventLoop& back, Session session, StoreDone done) = 0;
  // The session whose stored hash equals `token_hash` (compared in constant
  // time) with its user, or nullopt. Expiry is the caller's decision.
  virtual void find_session(common::EventLoop& back, std::string token_hash,
                            StoreCallback<std::optional<SessionInfo>> done) = 0;
  // True when a session was removed (committed), false when there was none.
  virtual void revoke_session(common::EventLoop& back, std::string token_hash, StoreCallback<bool> done) = 0;
};

}  // namespace api
