// The asynchronous AccountStore over LmdbAccounts: each call runs on the store's own worker
// thread (LMDB's writes block on the disk) and answers on the asking loop.
#include "api/lmdb_accounts.h"
#include "core/answer_here.h"
#include "core/worker.h"

namespace api {

using core::Result;
using core::Status;

namespace {

class LmdbAccountStore final : public AccountStore {
 public:
  explicit LmdbAccountStore(std::unique_ptr<LmdbAccounts> accounts)
      : accounts_(std::move(accounts)) {}
  ~LmdbAccountStore() override { worker_.reset(); }

  void find_user(core::EventLoop& back, std::string login,
                 StoreCallback<std::optional<User>> done) override {
    run(
        back, [this, login = std::move(login)] { return accounts_->find_user(login); },
        std::move(done));
  }
  void create_session(core::EventLoop& back, Session session, StoreDone done) override {
    run(
        back, [this, session = std::move(session)] { return accounts_->put_session(session); },
        std::move(done));
  }
  void find_session(core::EventLoop& back, std::string token_hash,
                    StoreCallback<std::optional<SessionInfo>> done) override {
    run(
        back, [this, h = std::move(token_hash)] { return accounts_->find_session(h); },
        std::move(done));
  }
  void revoke_session(core::EventLoop& back, std::string token_hash,
                      StoreCallback<bool> done) override {
    run(
        back, [this, h = std::move(token_hash)] { return accounts_->delete_session(h); },
        std::move(done));
  }
  void extend_session(core::EventLoop& back, std::string token_hash, int64_t expires_at,
                      StoreCallback<bool> done) override {
    run(
        back,
        [this, h = std::move(token_hash), expires_at] {
          return accounts_->extend_session(h, expires_at);
        },
        std::move(done));
  }
  void upgrade_password_hash(core::EventLoop& back, uint64_t user_id, std::string old_hash,
                             std::string new_hash, StoreCallback<bool> done) override {
    run(
        back,
        [this, user_id, old_hash = std::move(old_hash), new_hash = std::move(new_hash)] {
          return accounts_->replace_password_hash(user_id, old_hash, new_hash);
        },
        std::move(done));
  }
  void create_purchase(core::EventLoop& back, Purchase purchase,
                       StoreCallback<PurchaseOutcome> done) override {
    run(
        back,
        [this, p = std::move(purchase)]() mutable { return accounts_->add_purchase(std::move(p)); },
        std::move(done));
  }
  void find_purchase_by_key(core::EventLoop& back, uint64_t user_id, std::string key,
                            StoreCallback<std::optional<Purchase>> done) override {
    run(
        back,
        [this, user_id, key = std::move(key)] {
          return accounts_->find_purchase_by_key(user_id, key);
        },
        std::move(done));
  }
  void find_purchase(core::EventLoop& back, uint64_t id,
                     StoreCallback<std::optional<Purchase>> done) override {
    run(
        back, [this, id] { return accounts_->find_purchase(id); }, std::move(done));
  }
  void list_purchases(core::EventLoop& back, uint64_t user_id,
                      StoreCallback<std::vector<Purchase>> done) override {
    run(
        back, [this, user_id] { return accounts_->list_purchases(user_id); }, std::move(done));
  }
  void purge_expired_sessions(core::EventLoop& back, int64_t now_unix, size_t max,
                              StoreCallback<size_t> done) override {
    run(
        back, [this, now_unix, max] { return accounts_->purge_expired(now_unix, max); },
        std::move(done));
  }

 private:
  // No guard: the store outlives the API's requests, and `done` carries what a request needs.
  template <class Work, class Done>
  void run(core::EventLoop& back, Work work, Done done) {
    core::run_there_answer_here(*worker_, back, core::LifetimeWatch::forever(), std::move(work),
                                std::move(done));
  }

  std::unique_ptr<LmdbAccounts> accounts_;
  std::unique_ptr<core::WorkerThread> worker_ = std::make_unique<core::WorkerThread>();
};

}  // namespace

std::unique_ptr<AccountStore> make_lmdb_account_store(std::unique_ptr<LmdbAccounts> accounts) {
  return std::make_unique<LmdbAccountStore>(std::move(accounts));
}

}  // namespace api
