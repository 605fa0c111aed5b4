// One PostgreSQL connection driven by one libevent loop (libpq's asynchronous API: the
// connection is made with PQconnectStartParams/PQconnectPoll and queries are sent with
// PQsendQueryParams in nonblocking mode, the socket watched by the loop), so nothing blocks the
// loop. Queries run one after another in the order given. The client reconnects by itself
// (core/reconnect_policy.h: backoff 0.1 s doubling up to 2 s) and bounds every query with a
// deadline; host names are resolved on a worker thread and libpq is given the address
// (hostaddr), so it never resolves on the loop.
// Loop thread only, except construction (before the loop runs, or on the loop thread).
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/handles.h"
#include "core/result.h"
#include "stores/pg_options.h"
#include "stores/started_impl.h"

namespace core {
class EventLoop;
}  // namespace core

namespace stores {

inline void pg_result_free(PGresult* r) {
  PQclear(r);
}
using PgResultPtr = core::CHandle<PGresult, pg_result_free>;
inline void pg_conn_free(PGconn* c) {
  PQfinish(c);
}
using PgConnPtr = core::CHandle<PGconn, pg_conn_free>;

// libpq's connection keywords and values for `options`, as PQconnectdbParams and
// PQconnectStartParams take them (libpq copies them during that call). `host_key` is "host" (a
// name libpq resolves, blocking: start-up and administration only) or "hostaddr" (an address).
class PgConnectParams {
 public:
  PgConnectParams(const PgOptions& options, const char* host_key, const std::string& host,
                  const char* application);
  PgConnectParams(const PgConnectParams&) = delete;
  PgConnectParams& operator=(const PgConnectParams&) = delete;
  const char* const* keys() const { return keys_; }
  const char* const* values() const { return values_; }

 private:
  std::string port_;
  std::string timeout_s_;
  const char* keys_[8];
  const char* values_[8];
};

class PgClient {
 public:
  // A query's outcome: the result (PGRES_COMMAND_OK or PGRES_TUPLES_OK), or an error:
  //   "storage_unavailable": no connection, connection lost, deadline passed (the query may
  //                          or may not have run);
  //   "storage_error":      PostgreSQL refused it (message with its SQLSTATE).
  using Callback = std::function<void(core::Result<PgResultPtr>)>;
  using Params = std::vector<std::optional<std::string>>;  // text parameters; nullopt = NULL

  // Starts connecting at once. `loop` must outlive the client.
  PgClient(core::EventLoop& loop, PgOptions options);
  ~PgClient();  // closes the connection; callbacks of queries not finished are not called
  PgClient(const PgClient&) = delete;
  PgClient& operator=(const PgClient&) = delete;

  // One statement with parameters $1..$n, or with no parameters several statements (e.g. a
  // migration in BEGIN ... COMMIT). `done` runs once, later, on the loop (never inline), unless
  // the client is destroyed first. While the server is known to be down, a query makes the
  // client try to connect at once (at most every 100 ms) and waits for that attempt; if it fails,
  // so does the query (storage_unavailable), at once when the server refuses.
  void query(std::string sql, Params params, Callback done);

  bool connected() const;

 private:
  class Impl;
  StartedImpl<Impl> impl_;
};

// The SQLSTATE of an error result ("" when none).
std::string pg_sqlstate(const PGresult* r);

}  // namespace stores
