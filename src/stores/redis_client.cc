#include "stores/redis_client.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>

#include "core/event_loop.h"
#include "core/handles.h"
#include "core/host_lookup.h"
#include "core/log.h"
#include "core/reconnect_timer.h"

namespace stores {
namespace {

constexpr const char* kLog = "redis";

using SteadyClock = std::chrono::steady_clock;

RedisReply copy_reply(const redisReply& r, int depth = 0) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.type = r.type == REDIS_REPLY_STRING   ? RedisReply::Type::string
                 : r.type == REDIS_REPLY_STATUS ? RedisReply::Type::status
                                                : RedisReply::Type::error;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::integer;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::array;
      if (depth < 8) {
        out.elements.reserve(r.elements);
        for (size_t i = 0; i < r.elements; ++i)
          out.elements.push_back(copy_reply(*r.element[i], depth + 1));
      }
      break;
    default:
      out.type = RedisReply::Type::nil;
      break;
  }
  return out;
}

std::string sha1_hex(const std::string& text) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::string out;
  char buf[3];
  for (unsigned char c : digest) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    out += buf;
  }
  return out;
}

}  // namespace

int64_t RedisReply::as_int(int64_t fallback) const {
  if (type == Type::integer) return integer;
  if (type == Type::string || type == Type::status) {
    try {
      size_t used = 0;
      const long long v = std::stoll(str, &used);
      if (used == str.size()) return v;
    } catch (...) {
    }
  }
  return fallback;
}

class RedisClient::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(core::EventLoop& loop, RedisOptions options) : loop_(loop), options_(std::move(options)) {}

  void start() {
    const auto tick = std::clamp<std::chrono::milliseconds>(
        options_.timeout / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(250));
    tick_.start(tick);
    connect();
  }

  void shutdown() {
    stopping_ = true;
    pending_.clear();
    tick_.cancel();
    reconnect_.cancel();
    if (ctx_ != nullptr) {
      redisAsyncContext* ctx = ctx_;
      ctx_ = nullptr;
      ctx->data = nullptr;
      redisAsyncFree(ctx);
    }
    address_.stop();  // joins (a lookup in flight finishes first)
  }

  void command(std::vector<std::string> argv, Callback done) {
    if (ctx_ == nullptr && !stopping_ && address_.known() &&
        reconnect_.take_now(SteadyClock::now())) {
      // Waiting to reconnect: try now, so a Redis that came back serves this command (hiredis
      // sends it once connected; a refused connection fails it at once).
      connect();
    }
    if (ctx_ == nullptr) return fail_later(std::move(done));
    std::vector<const char*> args;
    std::vector<size_t> lengths;
    args.reserve(argv.size());
    lengths.reserve(argv.size());
    for (const auto& a : argv) {
      args.push_back(a.data());
      lengths.push_back(a.size());
    }
    const uint64_t id = next_id_++;
    const int rc = redisAsyncCommandArgv(
        ctx_, &Impl::on_reply, reinterpret_cast<void*>(static_cast<uintptr_t>(id)),
        static_cast<int>(args.size()), args.data(), lengths.data());
    if (rc != REDIS_OK) return fail_later(std::move(done));
    pending_.emplace(id, Pending{std::move(done), SteadyClock::now() + options_.timeout});
  }

  void eval(const std::string& script, const std::vector<std::string>& keys,
            const std::vector<std::string>& args, Callback done) {
    auto& sha = shas_[&script];
    if (sha.empty()) sha = sha1_hex(script);
    std::vector<std::string> argv;
    argv.reserve(3 + keys.size() + args.size());
    argv.push_back("EVALSHA");
    argv.push_back(sha);
    argv.push_back(std::to_string(keys.size()));
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    std::weak_ptr<Impl> weak = shared_from_this();
    command(argv, [weak, argv, &script, done = std::move(done)](const RedisReply* r) mutable {
      auto self = weak.lock();
      if (!self) return;
      if (r != nullptr && r->is_error() && r->str.rfind("NOSCRIPT", 0) == 0) {
        argv[0] = "EVAL";
        argv[1] = script;
        return self->command(std::move(argv), std::move(done));
      }
      done(r);
    });
  }

  bool connected() const { return connected_; }
  uint64_t connects() const { return connects_; }

 private:
  struct Pending {
    Callback done;
    SteadyClock::time_point deadline;
  };

  static Impl* of(const redisAsyncContext* ctx) { return static_cast<Impl*>(ctx->data); }

  static void on_reply(redisAsyncContext* ctx, void* reply, void* privdata) {
    Impl* self = of(ctx);
    if (self == nullptr) return;
    auto it = self->pending_.find(static_cast<uint64_t>(reinterpret_cast<uintptr_t>(privdata)));
    if (it == self->pending_.end()) return;  // timed out or failed already
    Callback done = std::move(it->second.done);
    self->pending_.erase(it);
    if (reply == nullptr) return done(nullptr);
    const RedisReply copy = copy_reply(*static_cast<redisReply*>(reply));
    done(&copy);
  }

  static void on_connect(const redisAsyncContext* ctx, int status) {
    Impl* self = of(ctx);
    if (self == nullptr) return;
    if (status != REDIS_OK) {
      LOG_DEBUG(kLog, "connect to ", self->address_.address(), ":", self->options_.port,
                " failed: ", ctx->errstr);
      self->ctx_ = nullptr;  // hiredis frees the context after this callback
      self->lost();
      return;
    }
    self->connected_ = true;
    ++self->connects_;
    self->reconnect_.connected();
    LOG_INFO(kLog, "connected to ", self->address_.address(), ":", self->options_.port);
  }

  static void on_disconnect(const redisAsyncContext* ctx, int status) {
    Impl* self = of(ctx);
    if (self == nullptr) return;
    if (status != REDIS_OK)
      LOG_WARN(kLog, "connection to ", self->address_.address(), ":", self->options_.port,
               " lost: ", ctx->errstr);
    self->ctx_ = nullptr;  // freed by hiredis after this callback
    self->lost();
  }

  void connect() {
    if (stopping_) return;
    std::weak_ptr<Impl> weak = shared_from_this();
    const bool known = address_.known_or_lookup([weak](std::string address) {
      auto self = weak.lock();
      if (!self || self->stopping_) return;
      if (address.empty()) {
        LOG_WARN(kLog, "cannot resolve ", self->options_.host);
        return self->schedule_reconnect();
      }
      self->address_.learned(std::move(address));
      self->connect();
    });
    if (!known) return;
    reconnect_.attempt_started(SteadyClock::now());
    redisAsyncContext* ctx = redisAsyncConnect(address_.address().c_str(), options_.port);
    if (ctx == nullptr || ctx->err != 0) {
      LOG_DEBUG(kLog, "connect to ", address_.address(), ":", options_.port,
                " failed: ", ctx ? ctx->errstr : "out of memory");
      if (ctx != nullptr) redisAsyncFree(ctx);
      return schedule_reconnect();
    }
    ctx->data = this;
    redisLibeventAttach(ctx, &loop_.base());
    redisAsyncSetConnectCallback(ctx, &Impl::on_connect);
    redisAsyncSetDisconnectCallback(ctx, &Impl::on_disconnect);
    ctx_ = ctx;
    connect_deadline_ = SteadyClock::now() + options_.timeout;
    if (!options_.password.empty()) {
      command({"AUTH", options_.password}, [](const RedisReply* r) {
        if (r != nullptr && r->is_error()) LOG_ERROR(kLog, "AUTH refused: ", r->str);
      });
    }
  }

  // The connection is gone (hiredis freed it or will): fail what was in flight, try again later.
  void lost() {
    connected_ = false;
    fail_all();
    schedule_reconnect();
  }

  void fail_all() {
    auto failed = std::move(pending_);
    pending_.clear();
    for (auto& [id, p] : failed) p.done(nullptr);
  }

  // Drops the connection ourselves (deadline passed). Not from inside a hiredis callback.
  void drop() {
    if (ctx_ == nullptr) return;
    redisAsyncContext* ctx = ctx_;
    ctx_ = nullptr;
    ctx->data = nullptr;  // its callbacks find no one
    auto failed = std::move(pending_);
    pending_.clear();
    redisAsyncFree(ctx);
    connected_ = false;
    for (auto& [id, p] : failed) p.done(nullptr);
    schedule_reconnect();
  }

  void schedule_reconnect() {
    if (!stopping_) reconnect_.schedule();
  }

  void on_tick() {
    const auto now = SteadyClock::now();
    const bool connect_late = ctx_ != nullptr && !connected_ && now > connect_deadline_;
    const bool reply_late = !pending_.empty() && pending_.begin()->second.deadline < now;
    if (connect_late || reply_late) {
      LOG_WARN(kLog, address_.address(), ":", options_.port,
               connect_late ? " did not accept the connection" : " did not answer", " within ",
               options_.timeout.count(), " ms; reconnecting");
      drop();
    }
  }

  void fail_later(Callback done) {
    std::weak_ptr<Impl> weak = shared_from_this();
    loop_.post([weak, done = std::move(done)] {
      if (weak.lock()) done(nullptr);
    });
  }

  core::EventLoop& loop_;
  RedisOptions options_;
  core::HostAddress address_{loop_, options_.host};
  redisAsyncContext* ctx_ =
      nullptr;  // owned by hiredis once connecting; freed by drop()/shutdown()
  bool connected_ = false;
  bool stopping_ = false;
  uint64_t connects_ = 0;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Pending> pending_;  // by id: the first is the oldest
  std::map<const std::string*, std::string> shas_;
  SteadyClock::time_point connect_deadline_;
  core::LoopTimer tick_{loop_, core::LoopTimer::Repeat::every, [this] { on_tick(); }};
  core::ReconnectTimer reconnect_{loop_, [this] { connect(); }};
};

RedisClient::RedisClient(core::EventLoop& loop, RedisOptions options)
    : impl_(loop, std::move(options)) {}

RedisClient::~RedisClient() = default;

void RedisClient::command(std::vector<std::string> argv, Callback done) {
  impl_->command(std::move(argv), std::move(done));
}

void RedisClient::eval(const std::string& script, const std::vector<std::string>& keys,
                       const std::vector<std::string>& args, Callback done) {
  impl_->eval(script, keys, args, std::move(done));
}

bool RedisClient::connected() const {
  return impl_->connected();
}
uint64_t RedisClient::connects() const {
  return impl_->connects();
}

}  // namespace stores
