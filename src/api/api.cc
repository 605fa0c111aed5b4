// Wiring of the API: config section, store, worker, routes.
#include "api/api.h"

#include <event2/event.h>

#include <thread>

#include "api/api_state.h"
#include "api/lmdb_accounts.h"
#include "api/log_tag.h"
#include "api/password.h"
#include "api/pg_accounts.h"
#include "core/log.h"
#include "core/thread_rule.h"

namespace api {

namespace {

constexpr core::CounterFamily kBalancerApiLogins{"balancer_api_logins_total",
                                                 "Login attempts by outcome", "result"};
constexpr core::CounterFamily kBalancerApiKdfQueueRefused{
    "balancer_api_kdf_queue_refused_total", "Password checks refused (503 busy) by cause",
    "reason"};
constexpr core::CounterFamily kBalancerApiPurchases{
    "balancer_api_purchases_total", "Purchase requests answered with a purchase", "result"};

constexpr std::string_view kPrefix = "/api/v1/";
// Expired sessions are dropped in batches, so a purge never holds the store's worker long.
constexpr timeval kPurgeInterval{60, 0};
constexpr size_t kPurgeBatch = 10000;

api::FairQueueLimits kdf_queue_limits(const ApiConfig& c) {
  api::FairQueueLimits limits;
  limits.capacity = c.kdf_queue;
  limits.per_key = c.kdf_queue_per_address;
  limits.max_idle_keys = c.login.max_tracked;
  return limits;
}
}  // namespace

void read_api_section(core::ConfigReader& r, ApiConfig& c) {
  c.store = r.choice<std::string>("store", "lmdb",
                                  {{"lmdb", "lmdb", "embedded, in data_dir"},
                                   {"postgresql", "postgresql", "shared by several balancers"}});
  {
    auto pg = r.object("postgresql");
    stores::PgOptions& o = c.postgresql;
    o.host = pg.string("host", o.host);
    if (o.host.empty() || o.host.find_first_of(" \t") != std::string::npos)
      pg.fail("host", "must be a host name or IP address");
    o.port = static_cast<uint16_t>(pg.integer("port", o.port, 1, 65535));
    o.dbname = pg.string("dbname", o.dbname);
    o.user = pg.string("user", o.user);
    if (o.dbname.empty()) pg.fail("dbname", "must not be empty");
    if (o.user.empty()) pg.fail("user", "must not be empty");
    o.password = pg.string("password", "");
    o.timeout = std::chrono::milliseconds(pg.integer("timeout_ms", o.timeout.count(), 100, 60000));
    pg.finish();
  }
  c.data_dir = r.string("data_dir", "");
  c.token_lifetime = std::chrono::seconds(r.integer("token_lifetime_s", 7 * 86400, 1, 366 * 86400));
  c.session_max_lifetime =
      std::chrono::seconds(r.integer("session_max_lifetime_s", 90 * 86400, 60, 5 * 366 * 86400));
  // PBKDF2's iteration count, from before Argon2id: older config files still load.
  (void)r.integer("kdf_iterations", 600'000, 1, kMaxIterations);
  c.kdf.memory_kib = static_cast<uint32_t>(
      r.integer("kdf_memory_kib", kMinProductionMemoryKib, kMinTestMemoryKib, kMaxMemoryKib));
  c.kdf.passes = static_cast<uint32_t>(
      r.integer("kdf_passes", kMinProductionPasses, kMinTestPasses, kMaxPasses));
  c.kdf_allow_weak_for_tests = r.boolean("kdf_allow_weak_for_tests", false);
  if (!c.kdf_allow_weak_for_tests) {
    if (c.kdf.memory_kib < kMinProductionMemoryKib) {
      r.fail("kdf_memory_kib",
             "must be at least 19456 (OWASP's Argon2id minimum; lower, down to 64, only with "
             "\"kdf_allow_weak_for_tests\": true)");
    }
    if (c.kdf.passes < kMinProductionPasses) {
      r.fail("kdf_passes",
             "must be at least 2 (OWASP's Argon2id minimum; 1 only with "
             "\"kdf_allow_weak_for_tests\": true)");
    }
  }
  c.kdf_threads = static_cast<int>(r.integer("kdf_threads", 0, 0, 256));
  c.kdf_queue = static_cast<size_t>(r.integer("kdf_queue", 64, 1, 100000));
  c.kdf_queue_per_address = static_cast<size_t>(r.integer("kdf_queue_per_address", 4, 1, 100000));
  c.max_body_bytes = static_cast<size_t>(r.integer("max_body_bytes", 16 * 1024, 256, 1 << 20));
  c.max_json_depth = static_cast<size_t>(r.integer("max_json_depth", 16, 2, 256));
  c.ticket_lifetime = std::chrono::seconds(r.integer("ticket_lifetime_s", 4 * 3600, 60, 7 * 86400));
  c.products_file = r.string("products_file", "");
  c.demo_payments = r.boolean("demo_payments", false);
  auto l = r.object("login_limits");
  c.login.per_address = static_cast<int>(l.integer("per_address", 20, 1, 1000000));
  c.login.per_address_login = static_cast<int>(l.integer("per_address_login", 5, 1, 1000000));
  c.login.per_login = static_cast<int>(l.integer("per_login", 5, 1, 1000000));
  c.login.max_delay = std::chrono::milliseconds(l.integer("max_delay_ms", 2000, 0, 60000));
  c.login.window = std::chrono::seconds(l.integer("window_s", 60, 1, 86400));
  c.login.max_tracked = static_cast<size_t>(l.integer("max_tracked", 100000, 100, 10000000));
  l.finish();
  r.finish();
}

Api::State::State(http::ServiceContext& c, const ApiConfig& initial, PlaybackHost& h)
    : context(c),
      clock(*c.clock),
      host(h),
      config(std::make_shared<const ApiConfig>(initial)),
      limiter(*c.clock, initial.login),
      logins_(kBalancerApiLogins.each(*c.metrics, kLoginOutcomeNames)),
      logins_slowed(c.metrics->counter(
          "balancer_api_logins_slowed_total",
          "Login attempts delayed because their login failed often from any address")),
      kdf_refused_(kBalancerApiKdfQueueRefused.each(*c.metrics, kKdfRefusalNames)),
      bodies_too_deep(c.metrics->counter(
          "balancer_api_json_too_deep_total",
          "Request bodies refused (400) for nesting deeper than api.max_json_depth")),
      store_errors(
          c.metrics->counter("balancer_api_store_errors_total", "Account store calls that failed")),
      purchases_created(kBalancerApiPurchases.in(*c.metrics, "created")),
      purchases_replayed(kBalancerApiPurchases.in(*c.metrics, "replayed")),
      tickets_issued(c.metrics->counter("balancer_api_playback_tickets_total",
                                        "Playback tickets handed out by the access check")),
      sessions_purged(
          c.metrics->counter("balancer_api_sessions_purged_total", "Expired sessions deleted")),
      sessions_refreshed(c.metrics->counter("balancer_api_sessions_refreshed_total",
                                            "Sessions whose expiry a refresh moved on")),
      hashes_upgraded(c.metrics->counter(
          "balancer_api_password_rehashed_total",
          "Stored password hashes replaced at sign-in by Argon2id at the configured cost")),
      hash_upgrades_failed(c.metrics->counter(
          "balancer_api_password_rehash_failed_total",
          "Re-hashes at sign-in not stored (store error, or the password changed meanwhile)")) {
  receipts = make_demo_receipt_verifier([this] { return config.load()->demo_payments; });
}

Api::Api(std::unique_ptr<State> state) : state_(std::move(state)) {}

void Api::State::purge_sessions() {
  core::expect_on(context.home());  // purge_running: home loop only
  if (!store || purge_running) return;
  purge_running = true;
  store->purge_expired_sessions(
      context.home(), clock.unix_now(), kPurgeBatch, [this](core::Result<size_t> r) {
        purge_running = false;
        if (!r) {
          store_errors.inc();
          LOG_WARN(kLog, "purging expired sessions failed: ", r.error().message);
          return;
        }
        sessions_purged.inc(*r);
      });
}

Api::~Api() {
  // The timer first, then password checks (they post to the loops), then the store's worker.
  state_->purge_timer.reset();
  state_->kdf.reset();
  state_->store.reset();
}

core::Result<std::unique_ptr<Api>> Api::create(http::ServiceContext& context,
                                               const ApiConfig& config, PlaybackHost& host) {
  auto state = std::make_unique<State>(context, config, host);
  if (config.store == "postgresql") {
    const stores::PgOptions& pg = config.postgresql;
    // Blocking, on the main thread before the loops run (never on a loop).
    if (auto migrated = migrate_pg_schema(pg); !migrated) {
      return core::Error{migrated.error().code, "api.postgresql: " + migrated.error().message};
    }
    LOG_INFO(kLog, "accounts in PostgreSQL at ", pg.host, ":", pg.port, "/", pg.dbname, " (schema ",
             kPgSchemaVersion, ")");
    state->store = std::make_unique<PgAccounts>(context.loops, pg);
  } else if (config.data_dir.empty()) {
    LOG_WARN(kLog, "api.data_dir is not set: the accounts API is off");
  } else {
    auto accounts = LmdbAccounts::open(config.data_dir);
    if (!accounts) return accounts.error();
    auto users = (*accounts)->list_users();
    LOG_INFO(kLog, "accounts in ", config.data_dir, " (schema ", kSchemaVersion, ", ",
             users ? std::to_string(users->size()) : std::string("?"), " user(s))");
    state->store = make_lmdb_account_store(std::move(accounts).value());
  }
  if (state->store) {
    const size_t workers = kdf_pool_size(config.kdf_threads, std::thread::hardware_concurrency());
    state->kdf =
        std::make_unique<PasswordCheckQueue>(*context.clock, kdf_queue_limits(config), workers);
    LOG_INFO(kLog, "password checks: Argon2id m=", config.kdf.memory_kib,
             " KiB, t=", config.kdf.passes, ", p=1 on ", workers, " worker(s), at most ",
             config.kdf_queue, " waiting");
  }
  if (config.kdf.memory_kib < kMinProductionMemoryKib || config.kdf.passes < kMinProductionPasses) {
    LOG_WARN(kLog, "api.kdf_memory_kib=", config.kdf.memory_kib,
             ", api.kdf_passes=", config.kdf.passes,
             " are below the production floor of 19456 KiB and 2 passes "
             "(kdf_allow_weak_for_tests): test use only");
  }
  if (config.demo_payments) {
    LOG_WARN(kLog,
             "api.demo_payments is on: every purchase receipt is accepted (no payment provider; "
             "demo only)");
  }
  LOG_INFO(kLog, config.products.size(), " product(s) on sale",
           config.products_file.empty() ? std::string() : " from " + config.products_file);
  const std::vector<ChannelEntry> channels = host.channels();
  for (const Product& p : config.products) {
    for (const std::string& id : p.unlocks) {
      bool known = p.kind != ProductKind::channel;
      for (const auto& c : channels) known = known || c.id == id;
      if (!known)
        LOG_WARN(kLog, "product '", p.id, "' unlocks channel '", id, "', which is not configured");
    }
  }
  State& s = *state;
  if (s.store) {
    s.purge_timer.reset(event_new(
        &context.home().base(), -1, EV_PERSIST,
        [](evutil_socket_t, short, void* arg) { static_cast<State*>(arg)->purge_sessions(); }, &s));
    evtimer_add(s.purge_timer.get(), &kPurgeInterval);
  }
  s.context.metrics->gauge_fn("balancer_api_kdf_pending", "Password checks queued or running",
                              [&s] { return s.kdf ? double(s.kdf->pending()) : 0.0; });
  s.context.metrics->gauge_fn("balancer_api_kdf_workers",
                              "Password-check worker threads (api.kdf_threads)",
                              [&s] { return s.kdf ? double(s.kdf->workers()) : 0.0; });
  s.context.metrics->gauge_fn(
      "balancer_api_kdf_checks_per_second",
      "Password checks completed per second over the last 10 s (the busy answers' Retry-After)",
      [&s] { return s.kdf ? s.kdf->checks_per_second() : 0.0; });
  return std::unique_ptr<Api>(new Api(std::move(state)));
}

void Api::attach(size_t index, http::HttpServer& server) {
  State& s = *state_;
  core::EventLoop& loop = *s.context.loops[index];
  server.route("/api/v1/auth/login", {"POST"},
               [&s, &loop](http::HttpExchange& ex) { s.handle_login(loop, ex); });
  server.route("/api/v1/auth/logout", {"POST"},
               [&s, &loop](http::HttpExchange& ex) { s.handle_logout(loop, ex); });
  server.route("/api/v1/auth/session", {"GET"},
               [&s, &loop](http::HttpExchange& ex) { s.handle_session(loop, ex); });
  server.route("/api/v1/auth/refresh", {"POST"},
               [&s, &loop](http::HttpExchange& ex) { s.handle_refresh(loop, ex); });
  server.route("/api/v1/channels", {"GET"},
               [&s, &loop](http::HttpExchange& ex) { s.handle_channels(loop, ex); });
  server.route("/api/v1/products", {"GET"},
               [&s](http::HttpExchange& ex) { s.handle_products(ex); });
  server.route("/api/v1/caches", {"GET"}, [&s](http::HttpExchange& ex) { s.handle_caches(ex); });
  server.route("/api/v1/purchases", {"GET", "POST"}, [&s, &loop](http::HttpExchange& ex) {
    if (ex.method() == "POST") return s.handle_purchase(loop, ex);
    s.handle_purchases(loop, ex);
  });
  server.route_prefix("/api/v1/purchases/", {"GET"},
                      [&s, &loop](http::HttpExchange& ex) { s.handle_purchase_by_id(loop, ex); });
  server.route("/api/v1/access", {"GET"},
               [&s, &loop](http::HttpExchange& ex) { s.handle_access(loop, ex); });
  // Everything else under /api/v1/ that no one serves: a JSON 404 whatever the method.
  server.route_prefix(std::string(kPrefix),
                      {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"},
                      [](http::HttpExchange& ex) {
                        ex.reply_error(404, "not_found", "No API endpoint at this path.");
                      });
}

void Api::reload(const ApiConfig& fresh) {
  State& s = *state_;
  auto running = s.config.load();
  ApiConfig next = fresh;
  if (next.demo_payments != running->demo_payments) {
    LOG_WARN(kLog, "reload: api.demo_payments is now ",
             next.demo_payments ? "on (every receipt accepted)" : "off");
  }
  if (next.store != running->store || !(next.postgresql == running->postgresql)) {
    LOG_WARN(kLog, "reload: api.store and api.postgresql.* change only on restart");
    next.store = running->store;
    next.postgresql = running->postgresql;
  }
  if (next.data_dir != running->data_dir) {
    LOG_WARN(kLog, "reload: api.data_dir changes only on restart");
    next.data_dir = running->data_dir;
  }
  if (next.kdf_threads != running->kdf_threads) {
    LOG_WARN(kLog, "reload: api.kdf_threads changes only on restart");
    next.kdf_threads = running->kdf_threads;
  }
  s.limiter.set_limits(next.login);
  if (s.kdf) s.kdf->set_limits(kdf_queue_limits(next));
  s.config.publish(std::make_shared<const ApiConfig>(std::move(next)));
}

}  // namespace api
