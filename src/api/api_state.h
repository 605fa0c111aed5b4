// Inside the API (not a public header): what every loop's handlers share, and
// the helpers the endpoint files use.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>

#include <rapidjson/document.h>

#include "api/account_store.h"
#include "api/api.h"
#include "api/login_limiter.h"
#include "api/password_queue.h"
#include "api/receipts.h"
#include "core/enum_names.h"
#include "core/event_loop.h"
#include "core/handles.h"
#include "core/metrics.h"
#include "core/worker.h"
#include "http/server/http_exchange.h"

namespace api {

// balancer_api_logins_total{result=...}; counters indexed by value (busy must stay last).
enum class LoginOutcome { ok, rejected, limited, busy };
inline constexpr const char* kLoginOutcomeNames[] = {"ok", "rejected", "limited", "busy"};
static_assert(std::size(kLoginOutcomeNames) == common::enum_count(LoginOutcome::busy));

// Why a password check was refused (503 busy): balancer_api_kdf_queue_refused_total{reason=...};
// indexed by value (displaced must stay last).
enum class KdfRefusal {
  address,   // the address has as many checks queued as it may
  full,      // the queue is full
  displaced  // a queued check gave its place to another address's
};
inline constexpr const char* kKdfRefusalNames[] = {"address", "full", "displaced"};
static_assert(std::size(kKdfRefusalNames) == common::enum_count(KdfRefusal::displaced));

struct Api::State {
  State(common::ServiceContext& c, const ApiConfig& config, PlaybackHost& host);

  // Loop thread: the handlers (auth_endpoints.cc).
  void handle_login(common::EventLoop& loop, common::HttpExchange& ex);
  void handle_logout(common::EventLoop& loop, common::HttpExchange& ex);
  void handle_session(common::EventLoop& loop, common::HttpExchange& ex);
  void handle_refresh(common::EventLoop& loop, common::HttpExchange& ex);
  // 503 busy with Retry-After (from the queue length and the measured check rate), counted as
  // a busy login and under `cause`.
  void answer_busy(common::HttpExchange& ex, KdfRefusal cause);
  // A right password: `upgraded` (the password hashed at the current cost) replaces `user`'s
  // hash in the store, counted; a new session for `user` answers 200 with its token.
  void store_upgraded_hash(common::EventLoop& loop, const User& user, std::string upgraded);
  void start_session(common::EventLoop& loop, std::shared_ptr<common::HttpExchange> ex,
                     const ApiConfig& cfg, const User& user);
  // catalog_endpoints.cc
  void handle_channels(common::EventLoop& loop, common::HttpExchange& ex);
  void handle_products(common::HttpExchange& ex);
  void handle_caches(common::HttpExchange& ex);
  // purchase_endpoints.cc
  void handle_purchase(common::EventLoop& loop, common::HttpExchange& ex);
  void handle_purchases(common::EventLoop& loop, common::HttpExchange& ex);
  void handle_purchase_by_id(common::EventLoop& loop, common::HttpExchange& ex);
  // access_endpoint.cc
  void handle_access(common::EventLoop& loop, common::HttpExchange& ex);
  void handle_anonymous_access(common::EventLoop& loop, common::HttpExchange& ex,
                               const ChannelEntry& channel);

  // Home loop, every kPurgeInterval: drops a batch of expired sessions.
  void purge_sessions();

  common::ServiceContext& context;
  const common::Clock& clock;
  PlaybackHost& host;
  common::Published<ApiConfig> config;  // any loop reads; the home loop publishes on reload
  LoginLimiter limiter;
  std::unique_ptr<AccountStore> store;  // null when api.data_dir is empty
  std::unique_ptr<ReceiptVerifier> receipts;
  std::unique_ptr<PasswordCheckQueue>
      kdf;  // password hashing on a pool, off the loops, fair between addresses
  common::EventPtr purge_timer;  // home loop
  bool purge_running = false;    // home loop

  common::Counter& logins(LoginOutcome outcome) { return *logins_[static_cast<size_t>(outcome)]; }
  common::Counter& kdf_refused(KdfRefusal cause) {
    return *kdf_refused_[static_cast<size_t>(cause)];
  }
  std::array<common::Counter*, std::size(kLoginOutcomeNames)> logins_;
  common::Counter& logins_slowed;
  std::array<common::Counter*, std::size(kKdfRefusalNames)> kdf_refused_;
  common::Counter& bodies_too_deep;
  common::Counter& store_errors;
  common::Counter& purchases_created;
  common::Counter& purchases_replayed;
  common::Counter& tickets_issued;
  common::Counter& sessions_purged;
  common::Counter& sessions_refreshed;
  common::Counter& hashes_upgraded;
  common::Counter& hash_upgrades_failed;
};

// Helpers of the endpoint files (session_check.cc). Loop thread.
using ExchangePtr = std::shared_ptr<common::HttpExchange>;
// Moves the exchange to the heap so a store callback can answer it later.
ExchangePtr hold(common::HttpExchange& ex);
// Cache-Control: no-store (every answer that depends on the user).
void no_store(common::HttpExchange& ex);
// 401 with WWW-Authenticate.
void unauthorized(common::HttpExchange& ex, std::string_view code, std::string_view message);
// True (and answers 404) when the accounts API is off (no api.data_dir).
bool api_off(Api::State& s, common::HttpExchange& ex);
// True when the request carries an Authorization header at all.
bool has_authorization(const common::HttpExchange& ex);
// Checks the bearer token; calls then(ex, session) for a valid session, or answers 401 itself.
void with_session(Api::State& s, common::EventLoop& loop, ExchangePtr ex,
                  std::function<void(ExchangePtr, const SessionInfo&)> then);
// 500 storage_error, counted and logged with `what`.
void storage_failed(Api::State& s, common::HttpExchange& ex, std::string_view what,
                    const common::Error& error);
// The JSON object of the request body into `doc`; answers 413 / 400 malformed_json itself
// (a body nested deeper than api.max_json_depth is refused before it is parsed, and
// counted) and returns false. `shape` ends the 400 message ("The body must be ...").
bool parse_json_body(Api::State& s, const ApiConfig& config, common::HttpExchange& ex,
                     rapidjson::Document& doc, std::string_view shape = "a JSON object");
// The string member `name` of `doc` into `out` (1..max bytes of printable ASCII when
// `printable`); answers 400 missing_field / invalid_field itself and returns false.
bool string_field(common::HttpExchange& ex, const rapidjson::Document& doc, const char* name,
                  size_t max_bytes, bool printable, std::string& out);

}  // namespace api
