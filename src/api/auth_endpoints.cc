// POST /api/v1/auth/login, POST /api/v1/auth/logout, GET /api/v1/auth/session
// (docs/api.md). Loop thread; store calls and password checks come back on the
// same loop.
#include <openssl/crypto.h>
#include <rapidjson/document.h>

#include "api/api_state.h"
#include "api/password.h"
#include "api/token.h"
#include "common/json.h"
#include "common/log.h"

namespace api {

namespace {

constexpr const char* kLog = "api";
using ExchangePtr = std::shared_ptr<common::HttpExchange>;

ExchangePtr hold(common::HttpExchange& ex) { return std::make_shared<common::HttpExchange>(std::move(ex)); }

void no_store(common::HttpExchange& ex) { ex.add_header("Cache-Control", "no-store"); }

bool valid_login(const std::string& login) {
  if (login.empty() || login.size() > 64) return false;
  for (char c : login) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == '@' || c == '+';
    if (!ok) return false;
  }
  return true;
}

std::string user_json(const User& u) {
  std::string out = "{\"id\":" + std::to_string(u.id) + ",\"login\":";
  common::append_json_string(out, u.login);
  return out + "}";
}

// The bearer token of the request: "" when there is none, "?" when malformed.
std::string bearer_token(const common::HttpExchange& ex) {
  auto h = ex.header("Authorization");
  if (!h) return "";
  std::string v = *h;
  if (v.size() < 7 || strncasecmp(v.c_str(), "Bearer ", 7) != 0) return "?";
  size_t start = v.find_first_not_of(' ', 7);
  if (start == std::string::npos) return "?";
  size_t end = v.find_last_not_of(' ');
  return v.substr(start, end - start + 1);
}

void unauthorized(common::HttpExchange& ex, std::string_view code, std::string_view message) {
  ex.add_header("WWW-Authenticate", std::string("Bearer error=\"") + (code == "missing_token" ? "invalid_request" : "invalid_token") + "\"");
  no_store(ex);
  ex.reply_error(401, code, message);
}

bool session_valid(const SessionInfo& s, int64_t now) {
  return s.session.expires_at > now && !s.user.disabled && s.session.user_epoch == s.user.session_epoch;
}

// Checks the request's bearer token; calls `then(info)` with a valid session,
// or answers 401 itself.
void with_session(Api::State& s, common::EventLoop& loop, ExchangePtr ex,
                  std::function<void(ExchangePtr, const SessionInfo&)> then) {
  std::string token = bearer_token(*ex);
  if (token.empty()) return unauthorized(*ex, "missing_token", "Send the session token: Authorization: Bearer <token>.");
  if (!well_formed_token(token)) return unauthorized(*ex, "invalid_token", "The session token is invalid or expired.");
  s.store->find_session(loop, token_hash(token),
                        [&s, ex, then = std::move(then)](common::Result<std::optional<SessionInfo>> r) {
                          if (!r) {
                            s.store_errors.inc();
                            LOG_ERROR(kLog, "session lookup failed: ", r.error().message);
                            return ex->reply_error(500, "storage_error", "The account store failed; try again.");
                          }
                          if (!r->has_value() || !session_valid(**r, s.clock.unix_now())) {
                            return unauthorized(*ex, "invalid_token", "The session token is invalid or expired.");
                          }
                          then(ex, **r);
                        });
}

bool api_off(Api::State& s, common::HttpExchange& ex) {
  if (s.store) return false;
  ex.reply_error(404, "not_found", "The accounts API is off on this balancer (api.data_dir is not set).");
  return true;
}

}  // namespace

void Api::State::handle_login(common::EventLoop& loop, common::HttpExchange& in) {
  if (api_off(*this, in)) return;
  auto cfg = config.load();
  std::string body = in.body();
  if (body.size() > cfg->max_body_bytes) {
    return in.reply_error(413, "body_too_large",
                          "The request body is larger than " + std::to_string(cfg->max_body_bytes) + " bytes.");
  }
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return in.reply_error(400, "malformed_json", "The body must be a JSON object: {\"login\":..., \"password\":...}.");
  }
  std::string fields[2];
  const char* names[2] = {"login", "password"};
  for (int i = 0; i < 2; ++i) {
    auto it = doc.FindMember(names[i]);
    if (it == doc.MemberEnd()) {
      return in.reply_error(400, "missing_field", std::string("The field '") + names[i] + "' is required.");
    }
    if (!it->value.IsString()) {
      return in.reply_error(400, "invalid_field", std::string("The field '") + names[i] + "' must be a string.");
    }
    fields[i].assign(it->value.GetString(), it->value.GetStringLength());
  }
  std::string login = std::move(fields[0]);
  std::string password = std::move(fields[1]);
  OPENSSL_cleanse(body.data(), body.size());
  if (!valid_login(login)) {
    return in.reply_error(400, "invalid_field",
                          "The field 'login' must be 1 to 64 letters, digits or . _ - @ +.");
  }
  if (password.empty() || password.size() > kMaxPasswordBytes) {
    return in.reply_error(400, "invalid_field", "The field 'password' must be 1 to 1024 bytes.");
  }
  if (int64_t wait = limiter.attempt(in.remote_ip(), login); wait > 0) {
    logins_limited.inc();
    in.add_header("Retry-After", std::to_string(wait));
    return in.reply_error(429, "too_many_attempts", "Too many login attempts; try again in " +
                                                        std::to_string(wait) + " s.");
  }
  if (kdf_pending.fetch_add(1) >= cfg->kdf_queue) {
    kdf_pending.fetch_sub(1);
    logins_busy.inc();
    in.add_header("Retry-After", "1");
    return in.reply_error(503, "busy", "Too many logins in progress; try again in a second.");
  }
  auto ex = hold(in);
  store->find_user(loop, login, [this, &loop, ex, cfg, password = std::move(password)](
                                    common::Result<std::optional<User>> found) mutable {
    if (!found) {
      kdf_pending.fetch_sub(1);
      store_errors.inc();
      LOG_ERROR(kLog, "user lookup failed: ", found.error().message);
      return ex->reply_error(500, "storage_error", "The account store failed; try again.");
    }
    std::optional<User> user = std::move(found).value();
    kdf->post([this, &loop, ex, cfg, user = std::move(user), password = std::move(password)]() mutable {
      // Unknown logins spend the same time as wrong passwords.
      bool ok = user ? verify_password(password, user->password_hash) : verify_dummy(password, cfg->kdf_iterations);
      OPENSSL_cleanse(password.data(), password.size());
      kdf_pending.fetch_sub(1);
      loop.post([this, &loop, ex, cfg, ok, user = std::move(user)] {
        if (!ok || !user || user->disabled) {
          logins_rejected.inc();
          no_store(*ex);
          return ex->reply_error(401, "invalid_credentials", "Wrong login or password.");
        }
        auto token = new_token();
        if (!token) return ex->reply_error(500, "internal_error", "The random source failed.");
        Session session;
        session.token_hash = token_hash(*token);
        session.user_id = user->id;
        session.user_epoch = user->session_epoch;
        session.created_at = clock.unix_now();
        session.expires_at = session.created_at + cfg->token_lifetime.count();
        const int64_t expires_at = session.expires_at;
        store->create_session(loop, std::move(session),
                              [this, ex, cfg, expires_at, token = std::move(*token), user = *user](common::Status s) {
                                if (!s) {
                                  store_errors.inc();
                                  LOG_ERROR(kLog, "session write failed: ", s.error().message);
                                  return ex->reply_error(500, "storage_error", "The account store failed; try again.");
                                }
                                logins_ok.inc();
                                std::string out = "{\"token\":\"" + token + "\",\"token_type\":\"Bearer\",\"expires_at\":" +
                                                  std::to_string(expires_at) +
                                                  ",\"expires_in\":" + std::to_string(cfg->token_lifetime.count()) +
                                                  ",\"user\":" + user_json(user) + "}";
                                no_store(*ex);
                                ex->reply(200, out);
                              });
      });
    });
  });
}

void Api::State::handle_logout(common::EventLoop& loop, common::HttpExchange& in) {
  if (api_off(*this, in)) return;
  with_session(*this, loop, hold(in), [this, &loop](ExchangePtr ex, const SessionInfo& info) {
    store->revoke_session(loop, info.session.token_hash, [this, ex](common::Result<bool> r) {
      if (!r) {
        store_errors.inc();
        LOG_ERROR(kLog, "session revoke failed: ", r.error().message);
        return ex->reply_error(500, "storage_error", "The account store failed; try again.");
      }
      no_store(*ex);
      ex->reply(200, "{\"revoked\":true}");
    });
  });
}

void Api::State::handle_session(common::EventLoop& loop, common::HttpExchange& in) {
  if (api_off(*this, in)) return;
  with_session(*this, loop, hold(in), [this](ExchangePtr ex, const SessionInfo& info) {
    const int64_t now = clock.unix_now();
    no_store(*ex);
    ex->reply(200, "{\"valid\":true,\"expires_at\":" + std::to_string(info.session.expires_at) +
                       ",\"expires_in\":" + std::to_string(info.session.expires_at - now) +
                       ",\"user\":" + user_json(info.user) + "}");
  });
}

}  // namespace api
