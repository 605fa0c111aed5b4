// One Redis connection driven by one libevent loop (hiredis async API with its libevent
// adapter): commands are sent without blocking and their replies come back as callbacks on the
// loop. The client reconnects by itself (core/reconnect_policy.h: backoff 0.1 s doubling up
// to 2 s) and bounds every command with a deadline: a reply not received in time fails that
// command and every other in flight, and the connection is dropped and made again (hiredis
// 0.14 has no timeouts of its own).
// Host names are resolved off the loop (on a worker thread); an IP literal connects at once.
// Loop thread only, except construction (before the loop runs, or on the loop thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stores/started_impl.h"

namespace core {
class EventLoop;
}  // namespace core

namespace stores {

// A reply copied out of hiredis's, so it outlives the callback.
struct RedisReply {
  enum class Type : uint8_t { string, array, integer, nil, status, error };
  Type type = Type::nil;
  int64_t integer = 0;
  std::string str;  // string, status, error
  std::vector<RedisReply> elements;

  bool is_error() const { return type == Type::error; }
  // The integer of a integer, or the number in a string; `fallback` otherwise.
  int64_t as_int(int64_t fallback = 0) const;
};

struct RedisOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  std::string password;                    // AUTH after connecting when not empty
  std::chrono::milliseconds timeout{500};  // connect and per-command deadline
};

class RedisClient {
 public:
  // `reply` is null when the command failed without an answer from Redis (not connected,
  // connection lost, deadline passed); an error answer is a error reply.
  using Callback = std::function<void(const RedisReply* reply)>;

  // Starts connecting at once. `loop` must outlive the client.
  RedisClient(core::EventLoop& loop, RedisOptions options);
  ~RedisClient();  // drops the connection; callbacks of commands in flight are not called
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Sends one command (argv, binary-safe). `done` always runs once, later, on the loop (never
  // inline), unless the client is destroyed first. Between reconnection attempts a command
  // makes the client try at once (at most every 100 ms) rather than fail until the next one.
  void command(std::vector<std::string> argv, Callback done);
  // EVALSHA of `script` (its SHA-1 computed here), falling back to EVAL when Redis does not
  // have the script cached yet (NOSCRIPT: first use, or Redis restarted). `script` must outlive
  // the client (a static string).
  void eval(const std::string& script, const std::vector<std::string>& keys,
            const std::vector<std::string>& args, Callback done);

  // True while a connection is established (as far as the client knows).
  bool connected() const;
  // Connections made so far (1 after the first, 2 after a reconnect, ...).
  uint64_t connects() const;

 private:
  class Impl;
  StartedImpl<Impl> impl_;
};

}  // namespace stores
