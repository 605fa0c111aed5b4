// Helpers shared by the API's endpoint files: bearer tokens, session checks,
// JSON bodies, error answers. Loop thread.
#include <openssl/crypto.h>
#include <strings.h>

#include "api/api_state.h"
#include "api/log_tag.h"
#include "api/token.h"
#include "core/json.h"
#include "core/log.h"

namespace api {

namespace {

// The bearer token of the request: "" when there is none, "?" when malformed.
std::string bearer_token(const http::HttpExchange& ex) {
  auto h = ex.header("Authorization");
  if (!h) return "";
  std::string v = *h;
  if (v.size() < 7 || strncasecmp(v.c_str(), "Bearer ", 7) != 0) return "?";
  size_t start = v.find_first_not_of(' ', 7);
  if (start == std::string::npos) return "?";
  size_t end = v.find_last_not_of(' ');
  return v.substr(start, end - start + 1);
}

bool session_valid(const SessionInfo& s, int64_t now) {
  return s.session.expires_at > now && !s.user.disabled &&
         s.session.user_epoch == s.user.session_epoch;
}

}  // namespace

ExchangePtr hold(http::HttpExchange& ex) {
  return std::make_shared<http::HttpExchange>(std::move(ex));
}

void no_store(http::HttpExchange& ex) {
  ex.add_header("Cache-Control", "no-store");
}

void unauthorized(http::HttpExchange& ex, std::string_view code, std::string_view message) {
  ex.add_header("WWW-Authenticate",
                std::string("Bearer error=\"") +
                    (code == "missing_token" ? "invalid_request" : "invalid_token") + "\"");
  no_store(ex);
  ex.reply_error(401, code, message);
}

bool api_off(Api::State& s, http::HttpExchange& ex) {
  if (s.store) return false;
  ex.reply_error(404, "not_found",
                 "The accounts API is off on this balancer (api.data_dir is not set).");
  return true;
}

bool has_authorization(const http::HttpExchange& ex) {
  return ex.header("Authorization").has_value();
}

void with_session(Api::State& s, core::EventLoop& loop, ExchangePtr ex,
                  std::function<void(ExchangePtr, const SessionInfo&)> then) {
  std::string token = bearer_token(*ex);
  if (token.empty())
    return unauthorized(*ex, "missing_token",
                        "Send the session token: Authorization: Bearer <token>.");
  if (!well_formed_token(token))
    return unauthorized(*ex, "invalid_token", "The session token is invalid or expired.");
  s.store->find_session(
      loop, token_hash(token),
      [&s, ex, then = std::move(then)](core::Result<std::optional<SessionInfo>> r) {
        if (!r) return storage_failed(s, *ex, "session lookup", r.error());
        if (!r->has_value() || !session_valid(**r, s.clock.unix_now())) {
          return unauthorized(*ex, "invalid_token", "The session token is invalid or expired.");
        }
        then(ex, **r);
      });
}

void storage_failed(Api::State& s, http::HttpExchange& ex, std::string_view what,
                    const core::Error& error) {
  s.store_errors.inc();
  no_store(ex);
  LOG_ERROR_LIMITED(kLog, what, " failed: ", error.message);
  if (error.code == "storage_unavailable") {
    // The shared database is down: a clear 503 the app retries; playback with tickets goes on.
    ex.add_header("Retry-After", "5");
    return ex.reply_error(503, "storage_unavailable",
                          "The account database cannot be reached right now; try again shortly.");
  }
  ex.reply_error(500, "storage_error", "The account store failed; try again.");
}

bool parse_json_body(Api::State& s, const ApiConfig& config, http::HttpExchange& ex,
                     rapidjson::Document& doc, std::string_view shape) {
  std::string body = ex.body();
  if (body.size() > config.max_body_bytes) {
    ex.reply_error(
        413, "body_too_large",
        "The request body is larger than " + std::to_string(config.max_body_bytes) + " bytes.");
    return false;
  }
  const core::Status parsed = core::parse_json(body, doc, config.max_json_depth);
  // The body may hold a password: no copy outlives the parse.
  OPENSSL_cleanse(body.data(), body.size());
  if (!parsed && parsed.error().code == "json_too_deep") {
    s.bodies_too_deep.inc();
    ex.reply_error(400, "malformed_json", "The body's " + parsed.error().message + ".");
    return false;
  }
  if (!parsed || !doc.IsObject()) {
    ex.reply_error(400, "malformed_json", "The body must be " + std::string(shape) + ".");
    return false;
  }
  return true;
}

bool string_field(http::HttpExchange& ex, const rapidjson::Document& doc, const char* name,
                  size_t max_bytes, bool printable, std::string& out) {
  auto it = doc.FindMember(name);
  if (it == doc.MemberEnd()) {
    ex.reply_error(400, "missing_field", std::string("The field '") + name + "' is required.");
    return false;
  }
  if (!it->value.IsString()) {
    ex.reply_error(400, "invalid_field", std::string("The field '") + name + "' must be a string.");
    return false;
  }
  out.assign(it->value.GetString(), it->value.GetStringLength());
  bool ok = !out.empty() && out.size() <= max_bytes;
  for (char c : out) {
    if (printable && (c < 0x21 || c > 0x7e)) ok = false;
  }
  if (!ok) {
    ex.reply_error(400, "invalid_field",
                   std::string("The field '") + name + "' must be 1 to " +
                       std::to_string(max_bytes) +
                       (printable ? " printable ASCII characters without spaces." : " bytes."));
    return false;
  }
  return true;
}

}  // namespace api
