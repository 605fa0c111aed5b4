#include "api/pg_accounts.h"

#include <cassert>
#include <cstdlib>

#include "api/log_tag.h"
#include "core/log.h"

namespace api {
namespace {

using core::Result;
using stores::PgResultPtr;

// Version 1: users, sessions, purchases with the idempotency key unique per user.
constexpr const char* kMigrationV1 = R"sql(
CREATE TABLE users (
  id            bigserial PRIMARY KEY,
  login         text NOT NULL UNIQUE,
  password_hash text NOT NULL,
  disabled      boolean NOT NULL DEFAULT false,
  created_at    bigint NOT NULL,
  session_epoch bigint NOT NULL DEFAULT 0
);
CREATE TABLE sessions (
  token_hash text PRIMARY KEY,          -- hex of SHA-256(token)
  user_id    bigint NOT NULL REFERENCES users (id),
  created_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  user_epoch bigint NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE TABLE purchases (
  id              bigserial PRIMARY KEY,
  user_id         bigint NOT NULL REFERENCES users (id),
  product_id      text NOT NULL,
  kind            text NOT NULL,
  unlocks         text NOT NULL,        -- ids joined by newlines
  idempotency_key text NOT NULL,
  receipt_ref     text NOT NULL,
  created_at      bigint NOT NULL,
  expires_at      bigint NOT NULL,
  UNIQUE (user_id, idempotency_key)
);
)sql";

const char* const kMigrations[] = {kMigrationV1};

std::string hex(std::string_view bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string unhex(std::string_view text) {
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out;
  for (size_t i = 0; i + 1 < text.size(); i += 2)
    out += static_cast<char>(nibble(text[i]) * 16 + nibble(text[i + 1]));
  return out;
}

std::string text(const PGresult* r, int row, int col) {
  return PQgetisnull(r, row, col) ? std::string()
                                  : std::string(PQgetvalue(r, row, col), PQgetlength(r, row, col));
}
int64_t integer(const PGresult* r, int row, int col) {
  return std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}
bool boolean(const PGresult* r, int row, int col) {
  return PQgetvalue(r, row, col)[0] == 't';
}

constexpr const char* kUserColumns =
    "u.id, u.login, u.password_hash, u.disabled, u.created_at, u.session_epoch";
User user_at(const PGresult* r, int row, int first) {
  User u;
  u.id = static_cast<uint64_t>(integer(r, row, first));
  u.login = text(r, row, first + 1);
  u.password_hash = text(r, row, first + 2);
  u.disabled = boolean(r, row, first + 3);
  u.created_at = integer(r, row, first + 4);
  u.session_epoch = static_cast<uint64_t>(integer(r, row, first + 5));
  return u;
}

constexpr const char* kPurchaseColumns =
    "id, user_id, product_id, kind, unlocks, idempotency_key, receipt_ref, created_at, expires_at";
Purchase purchase_at(const PGresult* r, int row) {
  Purchase p;
  p.id = static_cast<uint64_t>(integer(r, row, 0));
  p.user_id = static_cast<uint64_t>(integer(r, row, 1));
  p.product_id = text(r, row, 2);
  p.kind = text(r, row, 3) == "service" ? ProductKind::service : ProductKind::channel;
  const std::string unlocks = text(r, row, 4);
  size_t start = 0;
  while (start < unlocks.size()) {
    size_t end = unlocks.find('\n', start);
    if (end == std::string::npos) end = unlocks.size();
    p.unlocks.push_back(unlocks.substr(start, end - start));
    start = end + 1;
  }
  p.idempotency_key = text(r, row, 5);
  p.receipt_ref = text(r, row, 6);
  p.created_at = integer(r, row, 7);
  p.expires_at = integer(r, row, 8);
  return p;
}

std::string joined(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : "\n") + id;
  return out;
}

// Blocking (start-up only): one statement or a script; an error names what failed.
core::Status exec(PGconn* conn, const std::string& sql, const std::string& what) {
  PgResultPtr r(PQexec(conn, sql.c_str()));
  const auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return {};
  std::string message = r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn);
  while (!message.empty() && message.back() == '\n') message.pop_back();
  return core::Error{"storage_error", what + ": " + message};
}

}  // namespace

namespace {

// Blocking connection (start-up and administration only).
core::Result<stores::PgConnPtr> connect_blocking(const stores::PgOptions& o,
                                                 const char* application) {
  const stores::PgConnectParams params(o, "host", o.host, application);
  stores::PgConnPtr conn(PQconnectdbParams(params.keys(), params.values(), 0));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    std::string message = conn ? PQerrorMessage(conn.get()) : "out of memory";
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return core::Error{"storage_unavailable", "cannot connect to PostgreSQL at " + o.host + ":" +
                                                  std::to_string(o.port) + "/" + o.dbname + ": " +
                                                  message};
  }
  return conn;
}

}  // namespace

core::Result<PgResultPtr> pg_exec_blocking(const stores::PgOptions& o, const std::string& sql,
                                           const std::vector<std::string>& params) {
  auto conn = connect_blocking(o, "balancer-admin");
  if (!conn) return conn.error();
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  PgResultPtr r(PQexecParams(conn->get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                             values.data(), nullptr, nullptr, 0));
  const auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return r;
  std::string message = r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn->get());
  while (!message.empty() && message.back() == '\n') message.pop_back();
  return core::Error{"storage_error", "PostgreSQL refused the query (SQLSTATE " +
                                          stores::pg_sqlstate(r.get()) + "): " + message};
}

core::Status migrate_pg_schema(const stores::PgOptions& o) {
  auto connected = connect_blocking(o, "balancer-migrate");
  if (!connected) return connected.error();
  stores::PgConnPtr conn = std::move(*connected);
  const std::string where =
      "PostgreSQL at " + o.host + ":" + std::to_string(o.port) + "/" + o.dbname;
  if (auto s = exec(conn.get(), "BEGIN", where); !s) return s;
  // One balancer migrates at a time; the others wait here and then find the work done.
  if (auto s = exec(conn.get(), "SELECT pg_advisory_xact_lock(7262001)", where); !s) return s;
  if (auto s = exec(conn.get(),
                    "CREATE TABLE IF NOT EXISTS balancer_schema (version integer NOT NULL)", where);
      !s) {
    return s;
  }
  PgResultPtr r(PQexec(conn.get(), "SELECT coalesce(max(version), 0) FROM balancer_schema"));
  if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK)
    return core::Error{"storage_error", where + ": no schema"};
  const int version = static_cast<int>(integer(r.get(), 0, 0));
  if (version > kPgSchemaVersion) {
    return core::Error{"storage_error", where + " has schema version " + std::to_string(version) +
                                            ", newer than this balancer's " +
                                            std::to_string(kPgSchemaVersion)};
  }
  for (int v = version + 1; v <= kPgSchemaVersion; ++v) {
    if (auto s = exec(conn.get(), kMigrations[v - 1], where + ", migration " + std::to_string(v));
        !s)
      return s;
  }
  if (version < kPgSchemaVersion) {
    if (auto s = exec(conn.get(), "DELETE FROM balancer_schema", where); !s) return s;
    if (auto s = exec(
            conn.get(),
            "INSERT INTO balancer_schema VALUES (" + std::to_string(kPgSchemaVersion) + ")", where);
        !s) {
      return s;
    }
  }
  if (auto s = exec(conn.get(), "COMMIT", where); !s) return s;
  if (version < kPgSchemaVersion) {
    LOG_INFO(kLog, where, ": schema ", version, " -> ", kPgSchemaVersion);
  }
  return {};
}

PgAccounts::PgAccounts(const std::vector<core::EventLoop*>& loops,
                       const stores::PgOptions& options) {
  for (core::EventLoop* loop : loops)
    clients_.emplace_back(loop, std::make_unique<stores::PgClient>(*loop, options));
}

PgAccounts::~PgAccounts() = default;

stores::PgClient& PgAccounts::on(core::EventLoop& loop) {
  for (auto& [l, client] : clients_) {
    if (l == &loop) return *client;
  }
  assert(false && "PgAccounts: a loop it was not created for");
  return *clients_.front().second;
}

void PgAccounts::add_user(core::EventLoop& back, std::string login, std::string password_hash,
                          int64_t now, StoreCallback<User> done) {
  on(back).query(
      std::string("INSERT INTO users AS u (login, password_hash, created_at) VALUES ($1, $2, $3) "
                  "RETURNING ") +
          kUserColumns,
      {login, password_hash, std::to_string(now)},
      [login, done = std::move(done)](Result<PgResultPtr> r) {
        if (!r) {
          if (r.error().message.find("23505") != std::string::npos) {
            return done(core::Error{"conflict", "The login '" + login + "' exists."});
          }
          return done(r.error());
        }
        done(user_at(r->get(), 0, 0));
      });
}

void PgAccounts::find_user(core::EventLoop& back, std::string login,
                           StoreCallback<std::optional<User>> done) {
  on(back).query(std::string("SELECT ") + kUserColumns + " FROM users u WHERE u.login = $1",
                 {login}, [done = std::move(done)](Result<PgResultPtr> r) {
                   if (!r) return done(r.error());
                   if (PQntuples(r->get()) == 0) return done(std::optional<User>());
                   done(std::optional<User>(user_at(r->get(), 0, 0)));
                 });
}

void PgAccounts::create_session(core::EventLoop& back, Session s, StoreDone done) {
  on(back).query(
      "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, user_epoch) "
      "VALUES ($1, $2, $3, $4, $5)",
      {hex(s.token_hash), std::to_string(s.user_id), std::to_string(s.created_at),
       std::to_string(s.expires_at), std::to_string(s.user_epoch)},
      [done = std::move(done)](Result<PgResultPtr> r) {
        if (!r) return done(r.error());
        done({});
      });
}

void PgAccounts::find_session(core::EventLoop& back, std::string token_hash,
                              StoreCallback<std::optional<SessionInfo>> done) {
  on(back).query(
      std::string("SELECT s.token_hash, s.user_id, s.created_at, s.expires_at, s.user_epoch, ") +
          kUserColumns +
          " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
      {hex(token_hash)}, [done = std::move(done)](Result<PgResultPtr> r) {
        if (!r) return done(r.error());
        const PGresult* res = r->get();
        if (PQntuples(res) == 0) return done(std::optional<SessionInfo>());
        SessionInfo info;
        info.session.token_hash = unhex(text(res, 0, 0));
        info.session.user_id = static_cast<uint64_t>(integer(res, 0, 1));
        info.session.created_at = integer(res, 0, 2);
        info.session.expires_at = integer(res, 0, 3);
        info.session.user_epoch = static_cast<uint64_t>(integer(res, 0, 4));
        info.user = user_at(res, 0, 5);
        done(std::optional<SessionInfo>(std::move(info)));
      });
}

void PgAccounts::revoke_session(core::EventLoop& back, std::string token_hash,
                                StoreCallback<bool> done) {
  on(back).query("DELETE FROM sessions WHERE token_hash = $1", {hex(token_hash)},
                 [done = std::move(done)](Result<PgResultPtr> r) {
                   if (!r) return done(r.error());
                   done(std::atoi(PQcmdTuples(r->get())) > 0);
                 });
}

void PgAccounts::extend_session(core::EventLoop& back, std::string token_hash, int64_t expires_at,
                                StoreCallback<bool> done) {
  // One row back whether or not it moved: the session exists.
  on(back).query(
      "UPDATE sessions SET expires_at = GREATEST(expires_at, $2) WHERE token_hash = $1 RETURNING "
      "expires_at",
      {hex(token_hash), std::to_string(expires_at)},
      [done = std::move(done)](Result<PgResultPtr> r) {
        if (!r) return done(r.error());
        done(PQntuples(r->get()) > 0);
      });
}

void PgAccounts::upgrade_password_hash(core::EventLoop& back, uint64_t user_id,
                                       std::string old_hash, std::string new_hash,
                                       StoreCallback<bool> done) {
  on(back).query("UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
                 {std::to_string(user_id), old_hash, new_hash},
                 [done = std::move(done)](Result<PgResultPtr> r) {
                   if (!r) return done(r.error());
                   done(std::atoi(PQcmdTuples(r->get())) > 0);
                 });
}

void PgAccounts::create_purchase(core::EventLoop& back, Purchase purchase,
                                 StoreCallback<PurchaseOutcome> done) {
  insert_purchase(back, std::move(purchase), 0, std::move(done));
}

// One statement: insert unless the user already used the key, and return the row that holds
// the key either way. A concurrent insert of the same key (another balancer) makes this one
// wait and then insert nothing while the row is not yet in this statement's snapshot: then
// zero rows come back, and a second run finds it.
void PgAccounts::insert_purchase(core::EventLoop& back, Purchase p, int attempt,
                                 StoreCallback<PurchaseOutcome> done) {
  const std::string sql =
      std::string(
          "WITH ins AS (INSERT INTO purchases (user_id, product_id, kind, unlocks, "
          "idempotency_key, receipt_ref, created_at, expires_at) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
          "ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING ") +
      kPurchaseColumns + ") SELECT " + kPurchaseColumns + ", true FROM ins UNION ALL SELECT " +
      kPurchaseColumns +
      ", false FROM purchases WHERE user_id = $1 AND idempotency_key = $5 "
      "AND NOT EXISTS (SELECT 1 FROM ins)";
  stores::PgClient::Params params = {std::to_string(p.user_id),
                                     p.product_id,
                                     to_string(p.kind),
                                     joined(p.unlocks),
                                     p.idempotency_key,
                                     p.receipt_ref,
                                     std::to_string(p.created_at),
                                     std::to_string(p.expires_at)};
  on(back).query(
      sql, std::move(params),
      [this, &back, p, attempt, done = std::move(done)](Result<PgResultPtr> r) mutable {
        if (!r) return done(r.error());
        const PGresult* res = r->get();
        if (PQntuples(res) == 0) {
          if (attempt == 0) return insert_purchase(back, std::move(p), 1, std::move(done));
          return done(core::Error{"storage_error", "purchase key neither inserted nor found"});
        }
        PurchaseOutcome out;
        out.purchase = purchase_at(res, 0);
        out.created = boolean(res, 0, 9);
        done(std::move(out));
      });
}

void PgAccounts::find_purchase_by_key(core::EventLoop& back, uint64_t user_id,
                                      std::string idempotency_key,
                                      StoreCallback<std::optional<Purchase>> done) {
  on(back).query(std::string("SELECT ") + kPurchaseColumns +
                     " FROM purchases WHERE user_id = $1 AND idempotency_key = $2",
                 {std::to_string(user_id), idempotency_key},
                 [done = std::move(done)](Result<PgResultPtr> r) {
                   if (!r) return done(r.error());
                   if (PQntuples(r->get()) == 0) return done(std::optional<Purchase>());
                   done(std::optional<Purchase>(purchase_at(r->get(), 0)));
                 });
}

void PgAccounts::find_purchase(core::EventLoop& back, uint64_t id,
                               StoreCallback<std::optional<Purchase>> done) {
  on(back).query(std::string("SELECT ") + kPurchaseColumns + " FROM purchases WHERE id = $1",
                 {std::to_string(id)}, [done = std::move(done)](Result<PgResultPtr> r) {
                   if (!r) return done(r.error());
                   if (PQntuples(r->get()) == 0) return done(std::optional<Purchase>());
                   done(std::optional<Purchase>(purchase_at(r->get(), 0)));
                 });
}

void PgAccounts::list_purchases(core::EventLoop& back, uint64_t user_id,
                                StoreCallback<std::vector<Purchase>> done) {
  on(back).query(std::string("SELECT ") + kPurchaseColumns +
                     " FROM purchases WHERE user_id = $1 ORDER BY id DESC",
                 {std::to_string(user_id)}, [done = std::move(done)](Result<PgResultPtr> r) {
                   if (!r) return done(r.error());
                   std::vector<Purchase> out;
                   for (int i = 0; i < PQntuples(r->get()); ++i)
                     out.push_back(purchase_at(r->get(), i));
                   done(std::move(out));
                 });
}

void PgAccounts::purge_expired_sessions(core::EventLoop& back, int64_t now_unix, size_t max,
                                        StoreCallback<size_t> done) {
  on(back).query(
      "DELETE FROM sessions WHERE token_hash IN "
      "(SELECT token_hash FROM sessions WHERE expires_at < $1 LIMIT $2)",
      {std::to_string(now_unix), std::to_string(max)},
      [done = std::move(done)](Result<PgResultPtr> r) {
        if (!r) return done(r.error());
        done(static_cast<size_t>(std::atoll(PQcmdTuples(r->get()))));
      });
}

}  // namespace api
