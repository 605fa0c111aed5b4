#include "stores/pg_client.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netdb.h>

#include <algorithm>
#include <deque>

#include "core/event_loop.h"
#include "core/host_lookup.h"
#include "core/log.h"
#include "core/reconnect_timer.h"

namespace stores {
namespace {

constexpr const char* kLog = "postgresql";
using SteadyClock = std::chrono::steady_clock;

core::Error unavailable(const std::string& why) {
  return core::Error{"storage_unavailable", "The account database cannot be reached: " + why};
}

std::string trimmed(const char* text) {
  std::string s = text != nullptr ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string pg_sqlstate(const PGresult* r) {
  const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  return state != nullptr ? state : "";
}

PgConnectParams::PgConnectParams(const PgOptions& options, const char* host_key,
                                 const std::string& host, const char* application)
    : port_(std::to_string(options.port)),
      timeout_s_(std::to_string(std::max<int64_t>(1, options.timeout.count() / 1000))),
      keys_{host_key,           "port", "dbname", "user", "password", "connect_timeout",
            "application_name", nullptr},
      values_{host.c_str(),
              port_.c_str(),
              options.dbname.c_str(),
              options.user.c_str(),
              options.password.empty() ? nullptr : options.password.c_str(),
              timeout_s_.c_str(),
              application,
              nullptr} {}

class PgClient::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(core::EventLoop& loop, PgOptions options) : loop_(loop), options_(std::move(options)) {}

  void start() {
    tick_.start(std::chrono::milliseconds(100));
    connect();
  }

  void shutdown() {
    stopping_ = true;
    queue_.clear();
    current_.reset();
    watch_.reset();
    tick_.cancel();
    reconnect_.cancel();
    conn_.reset();
    address_.stop();
  }

  void query(std::string sql, Params params, Callback done) {
    const auto now = SteadyClock::now();
    if (down_ && state_ == State::idle) {
      // Waiting to reconnect: try now (at most every 100 ms), so a server that came back
      // serves this query; a server still down refuses at once and the query fails with it.
      if (!reconnect_.take_now(now)) {
        return fail_later(std::move(done), "no connection (" + last_error_ + ")");
      }
      queue_.push_back(
          Query{std::move(sql), std::move(params), std::move(done), now + options_.timeout});
      return connect();  // the query runs once connected, or fails with the attempt
    }
    queue_.push_back(
        Query{std::move(sql), std::move(params), std::move(done), now + options_.timeout});
    run_next();
  }

  bool connected() const { return state_ == State::ready || state_ == State::busy; }

 private:
  enum class State { idle, connecting, ready, busy };
  struct Query {
    std::string sql;
    Params params;
    Callback done;
    SteadyClock::time_point deadline;
  };

  void connect() {
    if (stopping_ || state_ != State::idle) return;
    std::weak_ptr<Impl> weak = shared_from_this();
    const bool known = address_.known_or_lookup([weak](std::string address) {
      auto self = weak.lock();
      if (!self || self->stopping_ || self->state_ != State::connecting) return;
      self->state_ = State::idle;
      if (address.empty()) return self->lost("cannot resolve " + self->options_.host);
      self->address_.learned(std::move(address));
      self->connect();
    });
    if (!known) {
      state_ = State::connecting;
      connect_deadline_ = SteadyClock::now() + options_.timeout * 4;
      return;
    }
    const PgConnectParams params(options_, "hostaddr", address_.address(), "balancer");
    reconnect_.attempt_started(SteadyClock::now());
    conn_.reset(PQconnectStartParams(params.keys(), params.values(), 0));
    state_ = State::connecting;
    connect_deadline_ = SteadyClock::now() + options_.timeout;
    if (!conn_ || PQstatus(conn_.get()) == CONNECTION_BAD) {
      return lost(conn_ ? trimmed(PQerrorMessage(conn_.get())) : "out of memory");
    }
    watch(EV_WRITE);
  }

  // Waits for `what` on the connection's socket (it may change while connecting).
  void watch(short what) {
    watch_.reset(event_new(
        &loop_.base(), PQsocket(conn_.get()), what,
        [](evutil_socket_t, short events, void* arg) {
          static_cast<Impl*>(arg)->on_socket(events);
        },
        this));
    event_add(watch_.get(), nullptr);
  }

  void on_socket(short events) {
    if (state_ == State::connecting) return poll_connect();
    if (state_ == State::ready) {
      // Idle: the server closing the connection (restart, shutdown) shows up here, so the
      // next query does not find a dead connection.
      if (PQconsumeInput(conn_.get()) == 0 || PQstatus(conn_.get()) == CONNECTION_BAD) {
        return lost(trimmed(PQerrorMessage(conn_.get())));
      }
      while (PGnotify* n = PQnotifies(conn_.get())) PQfreemem(n);
      return watch(EV_READ);
    }
    if (state_ != State::busy) return;
    if ((events & EV_WRITE) != 0 && !flush()) return;
    if ((events & EV_READ) != 0 && PQconsumeInput(conn_.get()) == 0) {
      return lost(trimmed(PQerrorMessage(conn_.get())));
    }
    if (collect()) return;
    // The rest of the answer is still on its way (the watch is one-shot).
    watch(flush_pending_ ? EV_READ | EV_WRITE : EV_READ);
  }

  void poll_connect() {
    switch (PQconnectPoll(conn_.get())) {
      case PGRES_POLLING_READING:
        return watch(EV_READ);
      case PGRES_POLLING_WRITING:
        return watch(EV_WRITE);
      case PGRES_POLLING_OK:
        PQsetnonblocking(conn_.get(), 1);
        state_ = State::ready;
        if (down_ || connects_ == 0)
          LOG_INFO(kLog, "connected to ", address_.address(), ":", options_.port, "/",
                   options_.dbname);
        ++connects_;
        down_ = false;
        reconnect_.connected();
        watch(EV_READ);
        return run_next();
      default:
        return lost(trimmed(PQerrorMessage(conn_.get())));
    }
  }

  void run_next() {
    if (state_ != State::ready || queue_.empty()) return;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    int sent;
    if (current_->params.empty()) {
      sent = PQsendQuery(conn_.get(), current_->sql.c_str());
    } else {
      std::vector<const char*> values;
      for (const auto& p : current_->params) values.push_back(p ? p->c_str() : nullptr);
      sent = PQsendQueryParams(conn_.get(), current_->sql.c_str(), static_cast<int>(values.size()),
                               nullptr, values.data(), nullptr, nullptr, 0);
    }
    if (sent == 0) return lost(trimmed(PQerrorMessage(conn_.get())));
    state_ = State::busy;
    result_.reset();
    flush();
  }

  // Sends what libpq buffered; watches for the rest and for the answer. False when lost.
  bool flush() {
    const int r = PQflush(conn_.get());
    if (r < 0) {
      lost(trimmed(PQerrorMessage(conn_.get())));
      return false;
    }
    flush_pending_ = r == 1;
    watch(flush_pending_ ? EV_READ | EV_WRITE : EV_READ);
    return true;
  }

  // Takes the results that arrived; true when the query is finished (answered).
  bool collect() {
    while (PQisBusy(conn_.get()) == 0) {
      PgResultPtr r(PQgetResult(conn_.get()));
      if (!r) {
        finish();
        return true;
      }
      // Several statements: keep the first error, else the last result.
      const bool have_error = result_ && PQresultStatus(result_.get()) != PGRES_COMMAND_OK &&
                              PQresultStatus(result_.get()) != PGRES_TUPLES_OK;
      if (!have_error) result_ = std::move(r);
    }
    return false;
  }

  void finish() {
    std::optional<Query> q = std::move(current_);
    current_.reset();
    state_ = State::ready;
    watch(EV_READ);
    PgResultPtr r = std::move(result_);
    if (q) {
      const auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
      if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        q->done(std::move(r));
      } else {
        const std::string state = pg_sqlstate(r.get());
        q->done(core::Error{"storage_error",
                            "PostgreSQL refused the query (SQLSTATE " + state +
                                "): " + trimmed(r ? PQresultErrorMessage(r.get()) : "no result")});
      }
    }
    run_next();
  }

  // The connection is gone or cannot be made: fail what waits, try again later.
  void lost(const std::string& why) {
    if (!down_)
      LOG_WARN(kLog, "connection to ", options_.host, ":", options_.port,
               " lost or refused: ", why);
    last_error_ = why;
    down_ = true;
    watch_.reset();
    conn_.reset();
    state_ = State::idle;
    std::optional<Query> q = std::move(current_);
    current_.reset();
    std::deque<Query> queued = std::move(queue_);
    queue_.clear();
    // Answered from the loop, never inline (lost() may run inside query()).
    if (q) fail_later(std::move(q->done), why);
    for (auto& w : queued) fail_later(std::move(w.done), why);
    schedule_reconnect();
  }

  void schedule_reconnect() {
    if (!stopping_) reconnect_.schedule();
  }

  void on_tick() {
    const auto now = SteadyClock::now();
    if (state_ == State::connecting && now > connect_deadline_)
      return lost("no answer within the timeout");
    if (state_ == State::busy && current_ && now > current_->deadline) {
      return lost("no answer within " + std::to_string(options_.timeout.count()) + " ms");
    }
    while (!queue_.empty() && queue_.front().deadline < now && state_ != State::ready) {
      Query q = std::move(queue_.front());
      queue_.pop_front();
      q.done(unavailable("no answer within the timeout"));
    }
  }

  void fail_later(Callback done, std::string why) {
    std::weak_ptr<Impl> weak = shared_from_this();
    loop_.post([weak, done = std::move(done), why = std::move(why)] {
      if (weak.lock()) done(unavailable(why));
    });
  }

  core::EventLoop& loop_;
  PgOptions options_;
  core::HostAddress address_{loop_, options_.host};
  PgConnPtr conn_;
  State state_ = State::idle;
  bool down_ = false;
  bool stopping_ = false;
  uint64_t connects_ = 0;
  std::string last_error_;
  std::deque<Query> queue_;
  std::optional<Query> current_;
  PgResultPtr result_;
  bool flush_pending_ = false;
  SteadyClock::time_point connect_deadline_;
  core::EventPtr watch_;
  core::LoopTimer tick_{loop_, core::LoopTimer::Repeat::every, [this] { on_tick(); }};
  core::ReconnectTimer reconnect_{loop_, [this] { connect(); }};
};

PgClient::PgClient(core::EventLoop& loop, PgOptions options) : impl_(loop, std::move(options)) {}

PgClient::~PgClient() = default;

void PgClient::query(std::string sql, Params params, Callback done) {
  impl_->query(std::move(sql), std::move(params), std::move(done));
}

bool PgClient::connected() const {
  return impl_->connected();
}

}  // namespace stores
