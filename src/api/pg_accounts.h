// Accounts on PostgreSQL (api.store: postgresql; DESIGN.md "Stores"): the AccountStore for
// several balancers sharing one set of users, sessions and purchases. Every call runs as one
// statement (one implicit transaction) on the calling loop's own connection (stores::PgClient,
// libpq asynchronous, the socket watched by that loop), and its callback runs on that loop.
// Idempotency keys are unique in the database (UNIQUE (user_id, idempotency_key)), so two
// balancers recording the same purchase at once store it once.
// Errors: "storage_unavailable" (PostgreSQL cannot be reached: the API answers 503) and
// "storage_error" (it refused a statement), "conflict" (add_user: the login exists).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "api/account_store.h"
#include "stores/pg_client.h"

namespace api {

// Schema version this code writes and understands (table balancer_schema).
inline constexpr int kPgSchemaVersion = 1;

// Creates or upgrades the schema (in one transaction under an advisory lock, so balancers
// starting together do it once). Blocking: call it at start-up, on the main thread, never on a
// loop. Refuses a database whose schema is newer than this code.
core::Status migrate_pg_schema(const stores::PgOptions& options);

// One statement with text parameters on a connection of its own, waiting for the answer
// (administration commands, never a loop). Errors as PgClient's.
core::Result<stores::PgResultPtr> pg_exec_blocking(const stores::PgOptions& options,
                                                   const std::string& sql,
                                                   const std::vector<std::string>& params);

class PgAccounts final : public AccountStore {
 public:
  // One connection per loop in `loops` (created here; the loops must outlive the store).
  PgAccounts(const std::vector<core::EventLoop*>& loops, const stores::PgOptions& options);
  ~PgAccounts() override;

  // A new user (tests and administration): "conflict" when the login exists.
  void add_user(core::EventLoop& back, std::string login, std::string password_hash, int64_t now,
                StoreCallback<User> done);

  void find_user(core::EventLoop& back, std::string login,
                 StoreCallback<std::optional<User>> done) override;
  void create_session(core::EventLoop& back, Session session, StoreDone done) override;
  void find_session(core::EventLoop& back, std::string token_hash,
                    StoreCallback<std::optional<SessionInfo>> done) override;
  void revoke_session(core::EventLoop& back, std::string token_hash,
                      StoreCallback<bool> done) override;
  void extend_session(core::EventLoop& back, std::string token_hash, int64_t expires_at,
                      StoreCallback<bool> done) override;
  void upgrade_password_hash(core::EventLoop& back, uint64_t user_id, std::string old_hash,
                             std::string new_hash, StoreCallback<bool> done) override;
  void create_purchase(core::EventLoop& back, Purchase purchase,
                       StoreCallback<PurchaseOutcome> done) override;
  void find_purchase_by_key(core::EventLoop& back, uint64_t user_id, std::string idempotency_key,
                            StoreCallback<std::optional<Purchase>> done) override;
  void find_purchase(core::EventLoop& back, uint64_t id,
                     StoreCallback<std::optional<Purchase>> done) override;
  void list_purchases(core::EventLoop& back, uint64_t user_id,
                      StoreCallback<std::vector<Purchase>> done) override;
  void purge_expired_sessions(core::EventLoop& back, int64_t now_unix, size_t max,
                              StoreCallback<size_t> done) override;

 private:
  stores::PgClient& on(core::EventLoop& loop);
  void insert_purchase(core::EventLoop& back, Purchase purchase, int attempt,
                       StoreCallback<PurchaseOutcome> done);

  std::vector<std::pair<core::EventLoop*, std::unique_ptr<stores::PgClient>>> clients_;
};

}  // namespace api
