// The embedded account store: one LMDB environment in api.data_dir.
//
// LmdbAccounts is the synchronous core (used by the admin command and, through
// LmdbAccountStore, by the server). Every method runs its own transaction;
// writes are committed (fsync) before they return ok. Safe from any thread and
// from several processes at once (LMDB's lock file): the admin command may add
// users while the server runs.
//
// Schema (version kSchemaVersion, in sub-database "meta" key "schema_version"):
//   users:     login → user JSON {id, login, password, disabled, created_at, session_epoch}
//   user_ids:  8-byte big-endian id → login
//   sessions:  SHA-256(token) → session JSON {user_id, created_at, expires_at, hash}
//   purchases: 8-byte big-endian id → purchase JSON {id, user_id, product_id, kind,
//              unlocks, key, receipt_ref, created_at, expires_at}
//   user_purchases: user id (8 bytes) + purchase id (8 bytes) → "" (a user's list)
//   purchase_keys:  user id (8 bytes) + idempotency key → purchase id (8 bytes)
//   meta:      schema_version, next_user_id, next_purchase_id
// Version 1 (no purchase sub-databases) is upgraded in place on open.
// An environment with a newer schema version is refused with a clear error.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/account_store.h"
#include "core/result.h"
#include "stores/lmdb.h"

namespace api {

class LmdbAccounts {
 public:
  // Opens (creating) the environment in `dir`. Errors ("storage_error") name
  // the directory; an unknown newer schema version is refused.
  static core::Result<std::unique_ptr<LmdbAccounts>> open(const std::string& dir);

  // "conflict" when the login exists.
  core::Result<User> add_user(const std::string& login, const std::string& password_hash,
                              int64_t now);
  core::Result<std::optional<User>> find_user(const std::string& login) const;
  core::Result<std::optional<User>> find_user_by_id(uint64_t id) const;
  core::Result<std::vector<User>> list_users() const;
  // Replaces the record of an existing user (same id and login); "not_found" otherwise.
  core::Status update_user(const User& user);
  // See AccountStore::upgrade_password_hash: false when the user is gone or its hash changed.
  core::Result<bool> replace_password_hash(uint64_t user_id, const std::string& old_hash,
                                           const std::string& new_hash);

  core::Status put_session(const Session& session);
  core::Result<std::optional<SessionInfo>> find_session(const std::string& token_hash) const;
  core::Result<bool> delete_session(const std::string& token_hash);
  // See AccountStore::extend_session: false when there is no such session.
  core::Result<bool> extend_session(const std::string& token_hash, int64_t expires_at);
  // See AccountStore::create_purchase: assigns the id, or returns the earlier
  // purchase of the same user and key.
  core::Result<PurchaseOutcome> add_purchase(Purchase purchase);
  core::Result<std::optional<Purchase>> find_purchase(uint64_t id) const;
  core::Result<std::optional<Purchase>> find_purchase_by_key(uint64_t user_id,
                                                             const std::string& key) const;
  core::Result<std::vector<Purchase>> list_purchases(uint64_t user_id) const;

  // Removes up to `max` sessions that expired before `now`; returns how many.
  core::Result<size_t> purge_expired(int64_t now, size_t max);

  const std::string& dir() const { return dir_; }

 private:
  LmdbAccounts(std::string dir, stores::LmdbEnv env) : dir_(std::move(dir)), env_(std::move(env)) {}
  core::Result<std::optional<User>> user_by_id(const stores::LmdbTxn& txn, uint64_t id) const;
  std::string dir_;
  stores::LmdbEnv env_;
  MDB_dbi meta_ = 0, users_ = 0, user_ids_ = 0, sessions_ = 0;
  MDB_dbi purchases_ = 0, user_purchases_ = 0, purchase_keys_ = 0;
};

// The AccountStore over LmdbAccounts: every call runs on one worker thread
// (off the event loops) and its result is posted back to the caller's loop.
// Destruction finishes the calls already queued.
std::unique_ptr<AccountStore> make_lmdb_account_store(std::unique_ptr<LmdbAccounts> accounts);

}  // namespace api
