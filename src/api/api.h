// The mobile REST API (DESIGN.md flow 5), linked into the balancer: same
// process, loops, service host and config file (section "api"). Accounts:
// login, logout, session check and refresh under /api/v1/auth/, over an AccountStore
// (api/account_store.h; the embedded LMDB backend lives in api.data_dir). Password hashing
// (Argon2id) runs on a pool of worker threads with a bounded queue shared fairly between
// client addresses (api/password_queue.h), so a burst of logins never sits on an event loop
// (no room is 503 busy, with a Retry-After from the measured check rate). Channels, products
// (conf/products.json), purchases, the cache list and the access check, which asks the balancer
// through PlaybackHost and hands out playback tickets. Endpoints, JSON shapes and errors:
// docs/api.md and docs/openapi.json.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "api/login_limiter.h"
#include "api/password.h"
#include "api/playback_host.h"
#include "api/products.h"
#include "core/config.h"
#include "core/result.h"
#include "http/server/http_server.h"
#include "http/server/service_host.h"
#include "stores/pg_options.h"

namespace api {

struct ApiConfig {
  // api.store: "lmdb" (the embedded default, in data_dir) or "postgresql" (several balancers
  // share one set of accounts; api.postgresql.*). Restart to change.
  std::string store = "lmdb";
  stores::PgOptions postgresql;
  std::string
      data_dir;  // LMDB environment; "" = the API is off (its routes answer 503 api_disabled)
  // A session lasts token_lifetime from its login or its last refresh (sliding), and never past
  // session_max_lifetime from its login (then the user signs in again).
  std::chrono::seconds token_lifetime{7 * 86400};
  std::chrono::seconds session_max_lifetime{90 * 86400};
  Argon2Params kdf;  // for new hashes (api.kdf_memory_kib, api.kdf_passes); older ones are
                     // re-hashed at sign-in
  bool kdf_allow_weak_for_tests = false;  // allows costs down to kMinTestMemoryKib / kMinTestPasses
  int kdf_threads = 0;  // password-check workers; 0 = one per core (restart to change)
  size_t max_body_bytes = 16 * 1024;  // above → 413
  size_t max_json_depth = 16;  // arrays/objects nested deeper in a body → 400 malformed_json
  size_t kdf_queue = 64;       // password checks waiting for a worker; above → 503 busy
  size_t kdf_queue_per_address = 4;  // of which from one client address; above → 503 busy
  LoginLimits login;
  // Playback tickets handed out by the access check live this long (capped at
  // the end of the purchase that entitles a paid channel).
  std::chrono::seconds ticket_lifetime{4 * 3600};
  // The products file (resolved against the main file's directory by the
  // balancer's loader; "" = nothing on sale) and what it holds.
  std::string products_file;
  std::vector<Product> products;
  // The demo receipt verifier accepts every receipt (there is no payment provider).
  bool demo_payments = false;
  bool operator==(const ApiConfig&) const = default;
};

// Reads the "api" section of the balancer's main file into `out`, failing
// (through the reader) with the key: unknown keys, wrong types, ranges, and
// Argon2id costs below OWASP's minimum (kdf_memory_kib 19456, kdf_passes 2) unless
// kdf_allow_weak_for_tests. kdf_iterations (PBKDF2, before Argon2id) is accepted and ignored. The
// products file is named, not read (read_products in api/products.h).
void read_api_section(core::ConfigReader& api, ApiConfig& out);

class Api {
 public:
  // Main thread, before the loops run: opens the store. Fails with
  // "storage_error" naming the directory (unwritable, newer schema, ...).
  // `host` (channels, caches, admission, tickets) must outlive the Api.
  static core::Result<std::unique_ptr<Api>> create(http::ServiceContext& context,
                                                   const ApiConfig& config, PlaybackHost& host);
  ~Api();  // finishes queued password checks and store calls
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // Main thread, before the loops run: the routes of loop `index` (every path
  // under /api/v1/ except the ones the balancer serves itself).
  void attach(size_t index, http::HttpServer& server);
  // Home loop: token lifetimes, KDF costs for new hashes, login limits,
  // password-check queue limits, body and JSON depth limits, products, demo payments, ticket
  // lifetime. data_dir, store and kdf_threads change only on restart (a warning says so).
  void reload(const ApiConfig& fresh);

  struct State;

 private:
  explicit Api(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// `balancer user add|list|disable|passwd LOGIN [--config FILE] [--set k=v]...`:
// manages accounts in the store of the config's api.data_dir (the server may be
// running). Passwords are read from stdin (one line). `load` reads the config.
// Returns the process exit code (0 ok, 1 failure, 2 usage or bad config).
int run_user_command(
    const std::vector<std::string>& args, const std::string& default_config,
    const std::function<core::Result<ApiConfig>(const std::string& path,
                                                const std::vector<std::string>& overrides)>& load);

}  // namespace api
