#include "balancer/viewers/admission_http.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/json.h"
#include "core/url.h"

namespace balancer {
namespace {

// A finite JSON number: up to 6 significant digits ("0.25", "1500", "1e-07").
std::string number(double v) {
  if (!std::isfinite(v)) return "0";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string seconds(Duration d) {
  return number(std::chrono::duration<double>(d).count());
}

void append_groups(std::string& out, const std::vector<AdmissionGroupCount>& groups) {
  out += '[';
  for (size_t i = 0; i < groups.size(); ++i) {
    if (i != 0) out += ',';
    out += "{\"id\":";
    core::append_json_string(out, groups[i].name);
    out += ",\"viewers\":" + std::to_string(groups[i].active_viewers);
    out += ",\"declared_mbps\":" + number(groups[i].declared_mbps) + "}";
  }
  out += ']';
}

}  // namespace

void send_reply(http::HttpExchange& ex, const Reply& reply) {
  if (ex.closed() || ex.replied()) return;
  for (const auto& h : reply.headers) ex.add_header(h.name, h.value);
  ex.add_header("Cache-Control", "no-store");
  ex.reply(reply.status, reply.body, "application/json");
}

Reply error_reply(int status, std::string_view code, std::string_view message) {
  return Reply{status, core::json_error_body(code, message), {}};
}

Reply queued_reply(const AdmissionDecision& d) {
  const int64_t retry = std::max<int64_t>(1, d.retry_after.count());
  std::string message = "All stream slots are taken. You are number " + std::to_string(d.position) +
                        " in the queue; send the same request again in " + std::to_string(retry) +
                        " s to keep your place.";
  std::string body = "{\"error\":{\"code\":\"queued\",\"message\":";
  core::append_json_string(body, message);
  body += "},\"queue\":{\"ticket\":" + std::to_string(d.ticket);
  body += ",\"position\":" + std::to_string(d.position);
  body += ",\"estimated_wait_s\":";
  body += d.estimated_wait ? std::to_string(d.estimated_wait->count()) : "null";
  body += ",\"retry_after_s\":" + std::to_string(retry) + "}}\n";
  return Reply{503, std::move(body), {{"Retry-After", std::to_string(retry)}}};
}

Reply refused_reply(const AdmissionDecision& d) {
  const std::string retry = std::to_string(std::max<int64_t>(1, d.retry_after.count()));
  Reply reply;
  switch (d.refusal) {
    case AdmissionDecision::Refusal::address_viewers:
      reply =
          error_reply(429, "too_many_viewers",
                      "This address already has as many anonymous viewers as allowed; sign in or "
                      "stop another player.");
      break;
    case AdmissionDecision::Refusal::address_tickets:
      reply = error_reply(429, "too_many_viewers",
                          "This address already holds as many places in the queue as allowed.");
      break;
    case AdmissionDecision::Refusal::account_streams:
      reply = error_reply(429, "too_many_streams",
                          "This account already plays on as many devices as it may at once; stop "
                          "the player on another device (its stream ends when it stops asking for "
                          "playlists) and try again.");
      break;
    case AdmissionDecision::Refusal::unavailable:
      reply =
          error_reply(503, "admission_unavailable",
                      "The service cannot check its viewer limits right now; try again shortly.");
      break;
    case AdmissionDecision::Refusal::full:
    case AdmissionDecision::Refusal::none:
      reply = error_reply(
          503, "busy",
          "The service is at its limit of viewers and waiting viewers; try again shortly.");
      break;
  }
  reply.headers.push_back({"Retry-After", retry});
  return reply;
}

const char* refusal_code(const AdmissionDecision& d) {
  switch (d.refusal) {
    case AdmissionDecision::Refusal::address_viewers:
    case AdmissionDecision::Refusal::address_tickets:
      return "too_many_viewers";
    case AdmissionDecision::Refusal::account_streams:
      return "too_many_streams";
    case AdmissionDecision::Refusal::unavailable:
      return "admission_unavailable";
    case AdmissionDecision::Refusal::full:
    case AdmissionDecision::Refusal::none:
      break;
  }
  return "busy";
}

Reply access_reply(const AdmissionDecision& d, std::string_view channel) {
  switch (d.kind) {
    case AdmissionDecision::Kind::admitted: {
      std::string body = "{\"access\":\"granted\",\"channel\":";
      core::append_json_string(body, channel);
      body += "}\n";
      return Reply{200, std::move(body), {}};
    }
    case AdmissionDecision::Kind::queued:
      return queued_reply(d);
    case AdmissionDecision::Kind::refused:
      return refused_reply(d);
    case AdmissionDecision::Kind::bad_viewer_key:
      break;
  }
  return error_reply(400, "bad_viewer", "The ticket or viewer id cannot identify a viewer.");
}

OperatorAccess authorize_operator(const OperatorPolicy& policy,
                                  const std::optional<std::string>& presented_key,
                                  std::string_view remote_ip) {
  http::OperatorVerdict verdict = http::check_operator(policy, presented_key, remote_ip);
  OperatorAccess out;
  out.allowed = verdict.allowed;
  out.via = std::move(verdict.via);
  if (!out.allowed) out.denial = error_reply(verdict.status, verdict.code, verdict.message);
  out.code = std::move(verdict.code);
  return out;
}

SwitchState parse_switch_state(std::string_view query) {
  SwitchState out;
  for (const core::QueryParam& param : core::QueryParams(query)) {
    if (param.name != "state") continue;
    const std::string_view value = param.value;
    if (out.present) {
      out.valid = false;  // repeated: ambiguous
      return out;
    }
    out.present = true;
    out.on = value == "on";
    out.valid = value == "on" || value == "off";
  }
  return out;
}

Reply switch_reply(bool emulation, bool changed) {
  std::string body = std::string("{\"emulation\":") + (emulation ? "true" : "false") +
                     ",\"changed\":" + (changed ? "true" : "false") + "}\n";
  return Reply{200, std::move(body), {}};
}

Reply admin_status_reply(const AdmissionStatus& status) {
  return Reply{200, admission_status_json(status), {}};
}

std::string admission_status_json(const AdmissionStatus& s) {
  std::string out = "{\"emulation\":";
  out += s.emulation ? "true" : "false";
  out += ",\"viewers\":{\"active\":" + std::to_string(s.active_viewers);
  out += ",\"origin\":" + std::to_string(s.origin_viewers);
  out += ",\"channels\":";
  append_groups(out, s.channels);
  out += ",\"caches\":";
  append_groups(out, s.caches);
  out += "},\"queue\":{\"length\":" + std::to_string(s.queued_viewers);
  out += ",\"reserved_slots\":" + std::to_string(s.reserved_slots);
  out += ",\"head_wait_s\":" + std::to_string(s.head_waited.count());
  out += ",\"next_wait_s\":";
  out += s.next_wait ? std::to_string(s.next_wait->count()) : "null";
  out += ",\"slot_free_rate_per_s\":";
  out += s.slot_free_rate_per_s ? number(*s.slot_free_rate_per_s) : "null";
  out += "},\"traffic\":{\"declared_mbps\":" + number(s.declared_mbps);
  out += ",\"estimate_mbps\":" + number(s.traffic_estimate_mbps);
  out += ",\"correction\":" + number(s.correction);
  out += ",\"measured_cache_mbps\":";
  out += s.measured_cache_mbps ? number(*s.measured_cache_mbps) : "null";
  out += "},\"limits\":{\"max_streams\":" + std::to_string(s.limits.max_streams);
  out += ",\"max_traffic_mbps\":" + number(s.limits.max_traffic_mbps);
  out += ",\"idle_timeout_s\":" + seconds(s.limits.idle_timeout);
  out += ",\"ticket_grace_s\":" + seconds(s.limits.ticket_grace);
  out += ",\"head_reservation_s\":" + seconds(s.limits.head_reservation);
  out += ",\"retry_after_s\":" + seconds(s.limits.retry_after);
  out += ",\"max_anonymous_per_address\":" + std::to_string(s.limits.max_anonymous_per_address);
  out += ",\"max_tickets_per_address\":" + std::to_string(s.limits.max_tickets_per_address);
  out += ",\"max_entries\":" + std::to_string(s.limits.max_entries);
  out += ",\"max_streams_per_account\":" + std::to_string(s.limits.max_streams_per_account);
  const AdmissionCounters& c = s.counters;
  out += "},\"counters\":{\"admitted\":" + std::to_string(c.admitted);
  out += ",\"admitted_from_queue\":" + std::to_string(c.admitted_from_queue);
  out += ",\"tickets_issued\":" + std::to_string(c.tickets_issued);
  out += ",\"slots_expired\":" + std::to_string(c.slots_expired);
  out += ",\"tickets_expired\":" + std::to_string(c.tickets_expired);
  out += ",\"reservations_lapsed\":" + std::to_string(c.reservations_lapsed);
  out += ",\"released\":" + std::to_string(c.released);
  out += ",\"refused_per_address\":" + std::to_string(c.refused_address);
  out += ",\"refused_max_entries\":" + std::to_string(c.refused_full);
  out += ",\"refused_per_account\":" + std::to_string(c.refused_account);
  out += "}}\n";
  return out;
}

}  // namespace balancer
