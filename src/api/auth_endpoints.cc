// POST /api/v1/auth/login, POST /api/v1/auth/logout, GET /api/v1/auth/session,
// POST /api/v1/auth/refresh (docs/api.md). Loop thread; store calls and password
// checks come back on the same loop.
#include <openssl/crypto.h>
#include <rapidjson/document.h>

#include <algorithm>

#include "api/api_state.h"
#include "api/password.h"
#include "api/token.h"
#include "core/answer_here.h"
#include "core/json.h"
#include "core/log.h"

namespace api {

namespace {

std::string user_json(const User& u) {
  std::string out = "{\"id\":" + std::to_string(u.id) + ",\"login\":";
  core::append_json_string(out, u.login);
  return out + "}";
}

struct Credentials {
  std::string login;
  std::string password;
};

// The login body's two fields; nullopt after answering 400 when one is missing or invalid.
std::optional<Credentials> read_credentials(http::HttpExchange& in,
                                            const rapidjson::Document& doc) {
  std::string fields[2];
  const char* names[2] = {"login", "password"};
  for (int i = 0; i < 2; ++i) {
    auto it = doc.FindMember(names[i]);
    if (it == doc.MemberEnd()) {
      in.reply_error(400, "missing_field",
                     std::string("The field '") + names[i] + "' is required.");
      return std::nullopt;
    }
    if (!it->value.IsString()) {
      in.reply_error(400, "invalid_field",
                     std::string("The field '") + names[i] + "' must be a string.");
      return std::nullopt;
    }
    fields[i].assign(it->value.GetString(), it->value.GetStringLength());
  }
  Credentials c{.login = std::move(fields[0]), .password = std::move(fields[1])};
  if (!valid_login(c.login)) {
    in.reply_error(400, "invalid_field",
                   "The field 'login' must be 1 to 64 letters, digits or . _ - @ +.");
    return std::nullopt;
  }
  if (c.password.empty() || c.password.size() > kMaxPasswordBytes) {
    in.reply_error(400, "invalid_field", "The field 'password' must be 1 to 1024 bytes.");
    return std::nullopt;
  }
  return c;
}

}  // namespace

void Api::State::answer_busy(http::HttpExchange& ex, KdfRefusal cause) {
  kdf_refused(cause).inc();
  logins(LoginOutcome::busy).inc();
  const std::string wait = std::to_string(kdf->retry_after().count());
  ex.add_header("Retry-After", wait);
  ex.reply_error(503, "busy", "Too many sign-ins in progress; try again in " + wait + " s.");
}

void Api::State::handle_login(core::EventLoop& loop, http::HttpExchange& in) {
  if (api_off(*this, in)) return;
  auto cfg = config.load();
  rapidjson::Document doc;
  if (!parse_json_body(*this, *cfg, in, doc, "a JSON object: {\"login\":..., \"password\":...}"))
    return;
  std::optional<Credentials> credentials = read_credentials(in, doc);
  if (!credentials) return;
  std::string login = std::move(credentials->login);
  std::string password = std::move(credentials->password);
  // The client's network (an IPv6 client's /64 by default): what the limiter and the fair
  // password-check queue count, so a host cannot spread over the addresses it holds.
  const std::string address = in.remote_network();
  const LoginVerdict verdict = limiter.attempt(address, login);
  if (verdict.retry_after_s > 0) {
    logins(LoginOutcome::limited).inc();
    in.add_header("Retry-After", std::to_string(verdict.retry_after_s));
    return in.reply_error(
        429, "too_many_attempts",
        "Too many login attempts; try again in " + std::to_string(verdict.retry_after_s) + " s.");
  }
  // Failures from anywhere slow this login's checks down; they never refuse them.
  if (verdict.delay.count() > 0) logins_slowed.inc();
  auto ex = hold(in);
  store->find_user(
      loop, login,
      [this, &loop, ex, cfg, address, login, delay = verdict.delay,
       password = std::move(password)](core::Result<std::optional<User>> found) mutable {
        if (!found) return storage_failed(*this, *ex, "user lookup", found.error());
        std::optional<User> user = std::move(found).value();
        PasswordCheckQueue::Check check;
        check.refuse = [this, &loop, ex] {
          loop.post([this, ex] { answer_busy(*ex, KdfRefusal::displaced); });
        };
        // The check runs on a KDF worker; its verdict is answered on this loop.
        struct Checked {
          bool ok = false;
          std::optional<User> user;
          std::optional<std::string> upgraded;  // the password's new hash, when it needs one
        };
        auto answer =
            core::reply_on(loop, core::LifetimeWatch::forever(), [this, &loop, ex, cfg](Checked c) {
              if (!c.ok || !c.user || c.user->disabled) {
                logins(LoginOutcome::rejected).inc();
                no_store(*ex);
                return ex->reply_error(401, "invalid_credentials", "Wrong login or password.");
              }
              if (c.upgraded) store_upgraded_hash(loop, *c.user, std::move(*c.upgraded));
              start_session(loop, ex, *cfg, *c.user);
            });
        check.run = [this, cfg, address, login, user = std::move(user),
                     password = std::move(password), answer = std::move(answer)]() mutable {
          Checked c;
          // Unknown logins spend the time of a check at the current cost.
          c.ok = user ? verify_password(password, user->password_hash)
                      : verify_dummy(password, cfg->kdf);
          // A hash of another scheme or cost is replaced now that the password is known to be
          // right.
          if (c.ok && user && !user->disabled && needs_rehash(user->password_hash, cfg->kdf)) {
            if (auto h = hash_password(password, cfg->kdf)) c.upgraded = std::move(h).value();
          }
          OPENSSL_cleanse(password.data(), password.size());
          if (!c.ok || !user || user->disabled) limiter.failed(address, login);
          c.user = std::move(user);
          answer(std::move(c));
        };
        switch (kdf->submit(address, std::move(check), delay)) {
          case PasswordCheckQueue::Admission::queued:
            return;
          case PasswordCheckQueue::Admission::key_full:
            return answer_busy(*ex, KdfRefusal::address);
          case PasswordCheckQueue::Admission::queue_full:
            return answer_busy(*ex, KdfRefusal::full);
        }
      });
}

void Api::State::store_upgraded_hash(core::EventLoop& loop, const User& user,
                                     std::string upgraded) {
  store->upgrade_password_hash(loop, user.id, user.password_hash, std::move(upgraded),
                               [this, id = user.id](core::Result<bool> r) {
                                 if (r && *r) return hashes_upgraded.inc();
                                 hash_upgrades_failed.inc();
                                 if (!r)
                                   LOG_WARN_LIMITED("api", "re-hashing user ", id,
                                                    "'s password: ", r.error().message);
                               });
}

void Api::State::start_session(core::EventLoop& loop, ExchangePtr ex, const ApiConfig& cfg,
                               const User& user) {
  auto token = new_token();
  if (!token) return ex->reply_error(500, "internal_error", "The random source failed.");
  Session session;
  session.token_hash = token_hash(*token);
  session.user_id = user.id;
  session.user_epoch = user.session_epoch;
  session.created_at = clock.unix_now();
  session.expires_at =
      session.created_at + std::min(cfg.token_lifetime, cfg.session_max_lifetime).count();
  const int64_t expires_at = session.expires_at;
  const int64_t expires_in = expires_at - session.created_at;
  store->create_session(
      loop, std::move(session),
      [this, ex, expires_at, expires_in, token = std::move(*token), user](core::Status s) {
        if (!s) return storage_failed(*this, *ex, "session write", s.error());
        logins(LoginOutcome::ok).inc();
        std::string out =
            "{\"token\":\"" + token +
            "\",\"token_type\":\"Bearer\",\"expires_at\":" + std::to_string(expires_at) +
            ",\"expires_in\":" + std::to_string(expires_in) + ",\"user\":" + user_json(user) + "}";
        no_store(*ex);
        ex->reply(200, out);
      });
}

void Api::State::handle_logout(core::EventLoop& loop, http::HttpExchange& in) {
  if (api_off(*this, in)) return;
  with_session(*this, loop, hold(in), [this, &loop](ExchangePtr ex, const SessionInfo& info) {
    store->revoke_session(loop, info.session.token_hash,
                          [this, &loop, ex, device = device_viewer_id(info)](core::Result<bool> r) {
                            if (!r) return storage_failed(*this, *ex, "session revoke", r.error());
                            // The device signed out: its stream (slot or queue place) is free for
                            // another device now, not after limits.idle_timeout_s.
                            host.release("t:" + device, loop);
                            no_store(*ex);
                            ex->reply(200, "{\"revoked\":true}");
                          });
  });
}

void Api::State::handle_session(core::EventLoop& loop, http::HttpExchange& in) {
  if (api_off(*this, in)) return;
  with_session(*this, loop, hold(in), [this](ExchangePtr ex, const SessionInfo& info) {
    const int64_t now = clock.unix_now();
    no_store(*ex);
    ex->reply(200, "{\"valid\":true,\"expires_at\":" + std::to_string(info.session.expires_at) +
                       ",\"expires_in\":" + std::to_string(info.session.expires_at - now) +
                       ",\"user\":" + user_json(info.user) + "}");
  });
}

void Api::State::handle_refresh(core::EventLoop& loop, http::HttpExchange& in) {
  if (api_off(*this, in)) return;
  with_session(*this, loop, hold(in), [this, &loop](ExchangePtr ex, const SessionInfo& info) {
    auto cfg = config.load();
    const int64_t now = clock.unix_now();
    // Sliding: token_lifetime from now, never past session_max_lifetime from the login, never
    // shorter than it already is.
    const int64_t renewable_until = info.session.created_at + cfg->session_max_lifetime.count();
    const int64_t expires_at = std::max(
        info.session.expires_at, std::min(now + cfg->token_lifetime.count(), renewable_until));
    store->extend_session(
        loop, info.session.token_hash, expires_at,
        [this, ex, now, expires_at, renewable_until, user = info.user](core::Result<bool> r) {
          if (!r) return storage_failed(*this, *ex, "session refresh", r.error());
          // Revoked between the check and the write (a logout racing the refresh).
          if (!*r)
            return unauthorized(*ex, "invalid_token", "The session token is invalid or expired.");
          sessions_refreshed.inc();
          no_store(*ex);
          ex->reply(200, "{\"token_type\":\"Bearer\",\"expires_at\":" + std::to_string(expires_at) +
                             ",\"expires_in\":" + std::to_string(expires_at - now) +
                             ",\"renewable_until\":" + std::to_string(renewable_until) +
                             ",\"user\":" + user_json(user) + "}");
        });
  });
}

}  // namespace api
