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
static_assert(std::size(kLoginOutcomeNames) == core::enum_count(LoginOutcome::busy));

// Why a password check was refused (503 busy): balancer_api_kdf_queue_refused_total{reason=...};
// indexed by value (displaced must stay last).
enum class KdfRefusal {
  address,   // the address has as many checks queued as it may
  full,      // the queue is full
  displaced  // a queued check gave its place to another address's
};
inline constexpr const char* kKdfRefusalNames[] = {"address", "full", "displaced"};
static_assert(std::size(kKdfRefusalNames) == core::enum_count(KdfRefusal::displaced));

struct Api::State {
  State(http::ServiceContext& c, const ApiConfig& config, PlaybackHost& host);

  // Loop thread: the handlers (auth_endpoints.cc).
  void handle_login(core::EventLoop& loop, http::HttpExchange& ex);
  void handle_logout(core::EventLoop& loop, http::HttpExchange& ex);
  void handle_session(core::EventLoop& loop, http::HttpExchange& ex);
  void handle_refresh(core::EventLoop& loop, http::HttpExchange& ex);
  // 503 busy with Retry-After (from the queue length and the measured check rate), counted as
  // a busy login and under `cause`.
  void answer_busy(http::HttpExchange& ex, KdfRefusal cause);
  // A right password: `upgraded` (the password hashed at the current cost) replaces `user`'s
  // hash in the store, counted; a new session for `user` answers 200 with its token.
  void store_upgraded_hash(core::EventLoop& loop, const User& user, std::string upgraded);
  void start_session(core::EventLoop& loop, std::shared_ptr<http::HttpExchange> ex,
                     const ApiConfig& cfg, const User& user);
  // catalog_endpoints.cc
  void handle_channels(core::EventLoop& loop, http::HttpExchange& ex);
  void handle_products(http::HttpExchange& ex);
  void handle_caches(http::HttpExchange& ex);
  // purchase_endpoints.cc
  void handle_purchase(core::EventLoop& loop, http::HttpExchange& ex);
  void handle_purchases(core::EventLoop& loop, http::HttpExchange& ex);
  void handle_purchase_by_id(core::EventLoop& loop, http::HttpExchange& ex);
  // access_endpoint.cc
  void handle_access(core::EventLoop& loop, http::HttpExchange& ex);
  void handle_anonymous_access(core::EventLoop& loop, http::HttpExchange& ex,
                               const ChannelEntry& channel);

  // Home loop, every kPurgeInterval: drops a batch of expired sessions.
  void purge_sessions();

  http::ServiceContext& context;
  const core::Clock& clock;
  PlaybackHost& host;
  core::Published<ApiConfig> config;  // any loop reads; the home loop publishes on reload
  LoginLimiter limiter;
  std::unique_ptr<AccountStore> store;  // null when api.data_dir is empty
  std::unique_ptr<ReceiptVerifier> receipts;
  std::unique_ptr<PasswordCheckQueue>
      kdf;                     // password hashing on a pool, off the loops, fair between addresses
  core::EventPtr purge_timer;  // home loop
  bool purge_running = false;  // home loop

  core::Counter& logins(LoginOutcome outcome) { return *logins_[static_cast<size_t>(outcome)]; }
  core::Counter& kdf_refused(KdfRefusal cause) { return *kdf_refused_[static_cast<size_t>(cause)]; }
  std::array<core::Counter*, std::size(kLoginOutcomeNames)> logins_;
  core::Counter& logins_slowed;
  std::array<core::Counter*, std::size(kKdfRefusalNames)> kdf_refused_;
  core::Counter& bodies_too_deep;
  core::Counter& store_errors;
  core::Counter& purchases_created;
  core::Counter& purchases_replayed;
  core::Counter& tickets_issued;
  core::Counter& sessions_purged;
  core::Counter& sessions_refreshed;
  core::Counter& hashes_upgraded;
  core::Counter& hash_upgrades_failed;
};

// Helpers of the endpoint files (session_check.cc). Loop thread.
using ExchangePtr = std::shared_ptr<http::HttpExchange>;
// Moves the exchange to the heap so a store callback can answer it later.
ExchangePtr hold(http::HttpExchange& ex);
// Cache-Control: no-store (every answer that depends on the user).
void no_store(http::HttpExchange& ex);
// 401 with WWW-Authenticate.
void unauthorized(http::HttpExchange& ex, std::string_view code, std::string_view message);
// True (and answers 404) when the accounts API is off (no api.data_dir).
bool api_off(Api::State& s, http::HttpExchange& ex);
// True when the request carries an Authorization header at all.
bool has_authorization(const http::HttpExchange& ex);
// The playback viewer id of the signed-in device `info` names: "u<user id>/s<session tag>", one
// stream per session (access_endpoint.cc says why).
std::string device_viewer_id(const SessionInfo& info);
// Checks the bearer token; calls then(ex, session) for a valid session, or answers 401 itself.
void with_session(Api::State& s, core::EventLoop& loop, ExchangePtr ex,
                  std::function<void(ExchangePtr, const SessionInfo&)> then);
// 500 storage_error, counted and logged with `what`.
void storage_failed(Api::State& s, http::HttpExchange& ex, std::string_view what,
                    const core::Error& error);
// The JSON object of the request body into `doc`; answers 413 / 400 malformed_json itself
// (a body nested deeper than api.max_json_depth is refused before it is parsed, and
// counted) and returns false. `shape` ends the 400 message ("The body must be ...").
bool parse_json_body(Api::State& s, const ApiConfig& config, http::HttpExchange& ex,
                     rapidjson::Document& doc, std::string_view shape = "a JSON object");
// The string member `name` of `doc` into `out` (1..max bytes of printable ASCII when
// `printable`); answers 400 missing_field / invalid_field itself and returns false.
bool string_field(http::HttpExchange& ex, const rapidjson::Document& doc, const char* name,
                  size_t max_bytes, bool printable, std::string& out);

}  // namespace api
