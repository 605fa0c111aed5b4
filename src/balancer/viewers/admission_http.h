// The HTTP face of admission (DESIGN.md flows 4 and 6), as pure functions that build a Reply;
// one adapter (send_reply) sends it. Shapes and status codes: docs/admission.md, "HTTP".
//   - the queue answer shared by the playlist endpoint and the access check (503 + Retry-After);
//   - the access check for the app (GET /api/v1/access), from the decision admission gave;
//   - operator authorisation (key in X-Operator-Key or ?key=, loopback allowance);
//   - the overload switch's ?state= and its answer; /admin/status.
// No state, no clock: callers pass `now`. Any thread (the balancer calls from its loop).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "balancer/viewers/admission_names.h"
#include "http/server/http_server.h"
#include "http/server/operator_access.h"

namespace balancer {

// A complete JSON reply. Built by the functions below, sent by send_reply().
struct Reply {
  int status = 200;
  std::string body;                       // JSON, ends with "\n"
  std::vector<http::HttpHeader> headers;  // besides Content-Type (always application/json)
};

// Sends `reply` with Cache-Control: no-store (CORS headers come from the server's pre-route hook,
// http/server/cors.h, on viewer-facing paths only; operator paths carry none). No-op when
// the client is gone or a reply was already sent.
void send_reply(http::HttpExchange& ex, const Reply& reply);

// An error in the contract's shape: {"error":{"code","message"}}.
Reply error_reply(int status, std::string_view code, std::string_view message);

// The answer to a viewer that must wait (decision.kind == queued): 503, Retry-After:
// <retry_after seconds>, body
//   {"error":{"code":"queued","message":"..."},
//    "queue":{"ticket":T,"position":P,"estimated_wait_s":W,"retry_after_s":R}}
Reply queued_reply(const AdmissionDecision& decision);

// The answer to a new viewer refused by a bound (decision.kind == refused), with Retry-After:
// 429 too_many_viewers (per-address bounds), 429 too_many_streams
// (limits.max_streams_per_account) or 503 busy (limits.max_entries).
Reply refused_reply(const AdmissionDecision& decision);
// The error code of refused_reply(decision): too_many_viewers, too_many_streams, busy or
// admission_unavailable.
const char* refusal_code(const AdmissionDecision& decision);

// The app's access check, from the decision admission gave (Admission::check) for the viewer key
// the caller made of the request's credentials ("t:<ticket viewer id>" or "v:<viewer id>") on
// `channel`:
//   200 {"access":"granted","channel":C}
// or queued_reply() (503), refused_reply() (429/503), or 400 bad_viewer for a key admission
// refused (bad_viewer_key).
Reply access_reply(const AdmissionDecision& decision, std::string_view channel);

// Who may use the operator endpoints (http/server/operator_access.h, the rule both servers use).
using http::OperatorPolicy;

struct OperatorAccess {
  bool allowed = false;
  std::string via;   // allowed: "operator key" or "loopback"
  std::string code;  // !allowed: operator_key_required (401) or operator_key_invalid (403)
  Reply denial;      // !allowed: the error reply
};

// A key that is presented must match (compared in constant time, whatever its length), even from
// loopback; without a key, loopback addresses (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104) pass when
// allowed. `presented_key` is the X-Operator-Key header, else the `key` query parameter.
OperatorAccess authorize_operator(const OperatorPolicy& policy,
                                  const std::optional<std::string>& presented_key,
                                  std::string_view remote_ip);

using http::is_loopback_address;

// ?state= of the overload switch, from the raw query. Absent: toggle. "on" or "off": set. Any
// other value, or the parameter repeated: not valid (the caller answers 400).
struct SwitchState {
  bool present = false;
  bool on = false;
  bool valid = true;
};
SwitchState parse_switch_state(std::string_view raw_query);

// 200 {"emulation":B,"changed":B}; operator-only (no CORS).
Reply switch_reply(bool emulation, bool changed);

// 200 with the /admin/status document (shape in docs/admission.md); operator-only (no CORS).
Reply admin_status_reply(const AdmissionStatus& status);
std::string admission_status_json(const AdmissionStatus& status);

}  // namespace balancer
