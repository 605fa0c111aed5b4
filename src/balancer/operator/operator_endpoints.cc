// Operator endpoints of one loop: the overload switch (both spellings),
// /admin/status and /health. Their state is process-wide (admission, health).
#include "balancer/balancer_loop.h"
#include "core/json.h"

namespace balancer {

using http::HttpExchange;

std::optional<std::string> BalancerLoop::operator_access(HttpExchange& ex) {
  const std::optional<std::string> key = http::presented_operator_key(ex);
  const BalancerConfig& c = config_.get().config;
  OperatorAccess access =
      authorize_operator({c.operator_key, c.operator_allow_loopback}, key, ex.remote_ip());
  if (access.allowed) return std::move(access.via);
  const std::string& code = access.code;
  parts_.metrics.error(code).inc();
  LOG_WARN_LIMITED("balancer", "operator request ", ex.path(), " from ", ex.remote_ip(),
                   " refused (", code, ")");
  send_reply(ex, access.denial);
  return std::nullopt;
}

// GET /access_queue_swith (toggle) and /access_queue_switch[?state=on|off].
void BalancerLoop::handle_switch(HttpExchange& ex) {
  const std::optional<std::string> via = operator_access(ex);
  if (!via) return;
  const SwitchState state = parse_switch_state(ex.query());
  if (!state.valid) {
    parts_.metrics.error("bad_request").inc();
    Reply bad = error_reply(400, "bad_request",
                            "state must be on or off (or left out, to toggle overload emulation).");
    return send_reply(ex, bad);
  }
  auto answer = [this, remote = ex.remote_ip(), path = ex.path(), via = *via](
                    HttpExchange& out, bool on, bool changed) {
    if (changed) {
      parts_.metrics.emulation_switches.inc();
      LOG_WARN("balancer", "overload emulation switched ", on ? "ON" : "OFF", " by ", remote, " (",
               via, ", ", path, ")");
    } else {
      LOG_INFO("balancer", "overload emulation stays ", on ? "on" : "off", ": asked by ", remote,
               " (", via, ", ", path, ")");
    }
    send_reply(out, switch_reply(on, changed));
  };
  const std::optional<bool> want = state.present ? std::optional<bool>(state.on) : std::nullopt;
  // With admission on Redis the switch is the fleet's (every balancer sees it) and answers later.
  auto held = std::make_shared<HttpExchange>(std::move(ex));
  parts_.any_loop.admission->switch_emulation(
      loop_, want, parts_.clock.now(), [this, held, answer](std::optional<EmulationSwitch> s) {
        if (!s) {
          parts_.metrics.error("admission_unavailable").inc();
          Reply down =
              error_reply(503, "admission_unavailable",
                          "The shared admission store (Redis) cannot be reached; nothing changed.");
          down.headers.push_back({"Retry-After", "1"});
          return send_reply(*held, down);
        }
        answer(*held, s->on, s->changed);
      });
}

void BalancerLoop::handle_admin_status(HttpExchange& ex) {
  if (!operator_access(ex)) return;
  Reply reply = admin_status_reply(parts_.any_loop.admission->status(parts_.clock.now()));
  // The players' playback (CMCD on playlist and key requests) beside admission: "playback":{...}.
  // And the channels with several sources: which one each plays from, and their health.
  const size_t last_brace = reply.body.rfind('}');
  if (last_brace != std::string::npos) {
    reply.body.insert(last_brace, ",\"playback\":" + parts_.playback.json() +
                                      ",\"sources\":" + parts_.any_loop.sources_board.read());
  }
  send_reply(ex, std::move(reply));
}

void BalancerLoop::handle_admin_sources(HttpExchange& ex) {
  const std::optional<std::string> via = operator_access(ex);
  if (!via) return;
  if (ex.method() != "POST") {
    ex.add_header("Cache-Control", "no-store");
    return ex.reply(200, parts_.any_loop.sources_board.read() + "\n", "application/json");
  }
  const std::string channel_id = ex.query_param("channel").value_or("");
  const std::string source = ex.query_param("source").value_or("");
  const ChannelConfig* channel = config_.get().find_channel(channel_id);
  if (channel == nullptr) {
    return fail(ex, 404, "unknown_channel", "No channel '" + channel_id + "' is configured.");
  }
  std::optional<size_t> index;
  if (source != "auto") {
    size_t parsed = 0;
    const bool digits = !source.empty() && source.size() <= 2 &&
                        source.find_first_not_of("0123456789") == std::string::npos;
    if (digits) parsed = std::stoul(source);
    if (!digits || parsed >= channel->sources.size()) {
      return fail(ex, 400, "bad_request",
                  "source must be the index of one of the channel's " +
                      std::to_string(channel->sources.size()) +
                      " sources (0 is the preferred one), or auto.");
    }
    index = parsed;
  }
  if (channel->sources.size() < 2) {
    return fail(ex, 409, "single_source", "Channel '" + channel_id + "' has one source only.");
  }
  auto held = std::make_shared<HttpExchange>(std::move(ex));
  chooser_.choose_source(
      loop_, channel_id, index,
      [this, held, channel_id, index, remote = held->remote_ip(),
       via = *via](SourceCache::SourceChoice made) {
        if (made == SourceCache::SourceChoice::not_playing) {
          return fail(*held, 409, "not_playing",
                      "Channel '" + channel_id +
                          "' has no viewer yet: its sources are chosen once it is played.");
        }
        if (made == SourceCache::SourceChoice::unhealthy) {
          return fail(*held, 409, "source_unhealthy",
                      "Source " + std::to_string(index.value_or(0)) + " of channel '" + channel_id +
                          "' is not healthy now (see GET /admin/sources): viewers stay where "
                          "they are.");
        }
        LOG_WARN("balancer", "channel ", channel_id, ": source ",
                 index ? std::to_string(*index) : std::string("auto"), " chosen by ", remote, " (",
                 via, ")");
        held->add_header("Cache-Control", "no-store");
        held->reply(200, parts_.any_loop.sources_board.read() + "\n", "application/json");
      });
}

void BalancerLoop::handle_health(HttpExchange& ex) {
  const auto now = parts_.clock.now();
  const AdmissionStatus status = parts_.any_loop.admission->status(now);
  const BalancerConfig& c = config_.get().config;
  const HealthView& view = health_.get();
  const bool draining = parts_.loops.draining();
  std::string out = "{\"status\":";
  out += draining ? "\"draining\"" : "\"ok\"";
  out += ",\"channels\":" + std::to_string(c.channels.size());
  out += ",\"viewers\":" + std::to_string(status.active_viewers);
  out += ",\"queued\":" + std::to_string(status.queued_viewers);
  out += ",\"emulation\":";
  out += status.emulation ? "true" : "false";
  out += ",\"sources\":" + std::to_string(parts_.any_loop.source_entries.load());
  out += ",\"refreshing\":" + std::to_string(parts_.any_loop.sources_refreshing.load());
  out += ",\"threads\":" + std::to_string(parts_.loops.loop_count());
  out += ",\"caches\":[";
  bool first = true;
  for (const auto& cache : c.caches) {
    auto found = view.find(cache.id);
    const CacheHealth* h = found == view.end() ? nullptr : &found->second;
    if (!first) out += ",";
    first = false;
    out += "{\"id\":" + core::json_string(cache.id) + ",\"site\":" + core::json_string(cache.site);
    out += ",\"url\":" + core::json_string(cache.url) +
           ",\"health_url\":" + core::json_string(cache.health_url);
    out += ",\"state\":\"";
    out += h ? to_string(h->state()) : "unknown";
    out += "\",\"overloaded\":";
    out += h && h->overloaded() ? "true" : "false";
    out += ",\"usable\":";
    out += h && h->usable(now) ? "true" : "false";
    const AdmissionGroupCount* on_cache = find_group(status.caches, cache.id);
    out += ",\"viewers\":" + std::to_string(on_cache ? on_cache->active_viewers : 0);
    if (h && !h->last_error().empty())
      out += ",\"last_error\":" + core::json_string(h->last_error());
    out += "}";
  }
  out += "]}\n";
  ex.add_header("Cache-Control", "no-store");
  ex.reply(200, out);
}

}  // namespace balancer
