#include "audience/viewer.h"

#include <algorithm>
#include <cmath>

#include "core/json.h"
#include "hls/uri.h"

namespace audience {

namespace {

constexpr size_t kMaxPlaylistBytes = 4 * 1024 * 1024;
constexpr size_t kMaxReplyBytes = 256 * 1024;

double retry_after(const http::FetchHead& head) {
  const auto value = head.header("Retry-After");
  if (!value) return 0;
  char* end = nullptr;
  const double s = std::strtod(value->c_str(), &end);
  return end != value->c_str() && std::isfinite(s) ? std::clamp(s, 0.0, 3600.0) : 0;
}

const rapidjson::Value* member(const rapidjson::Value& object, const char* name) {
  if (!object.IsObject()) return nullptr;
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

std::string string_member(const rapidjson::Value& object, const char* name) {
  const auto* v = member(object, name);
  return v && v->IsString() ? std::string(v->GetString(), v->GetStringLength()) : std::string();
}

double number_member(const rapidjson::Value& object, const char* name, double fallback) {
  const auto* v = member(object, name);
  return v && v->IsNumber() ? v->GetDouble() : fallback;
}

}  // namespace

std::string Viewer::host_of(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  return url.substr(0, url.find('/', scheme + 3));
}

double Viewer::backoff_s(int attempt) {
  return std::min(4.0, 0.5 * std::pow(2.0, std::max(0, attempt - 1)));
}

Viewer::Viewer(PlayerContext& context, uint64_t number, std::string cache)
    : ctx_(context),
      number_(number),
      id_("aud" + std::to_string(context.scenario.seed) + "-" + std::to_string(number)),
      local_address_(context.scenario.own_connections ? own_address(number) : std::string()),
      own_cache_(cache),
      cache_(std::move(cache)),
      buffer_(context.scenario.player.start_buffer_s),
      step_timer_(context.loop, core::LoopTimer::Repeat::once,
                  [this] {
                    auto step = std::move(next_step_);
                    if (step) step();
                  }),
      reload_timer_(context.loop, core::LoopTimer::Repeat::once, [this] { load_media(); }),
      segment_timer_(context.loop, core::LoopTimer::Repeat::once,
                     [this] { playing_parts_ ? pump_parts() : pump_segments(); }),
      steering_timer_(context.loop, core::LoopTimer::Repeat::once, [this] { load_steering(); }) {}

void Viewer::request(RequestKind kind, http::FetchRequest request, bool keep_body,
                     std::function<void(Reply)> done) {
  const double started = ctx_.now();
  request.timeout = std::chrono::milliseconds(
      static_cast<int64_t>(ctx_.scenario.player.request_timeout_s * 1000));
  request.local_address = local_address_;
  auto reply = std::make_shared<Reply>();
  const size_t limit = kind == RequestKind::master || kind == RequestKind::media ? kMaxPlaylistBytes
                                                                                 : kMaxReplyBytes;
  auto id = std::make_shared<http::FetchId>(0);
  http::FetchCallbacks callbacks;
  callbacks.on_head = [reply](const http::FetchHead& head) {
    reply->retry_after_s = retry_after(head);
  };
  callbacks.on_data = [reply, keep_body, limit](std::string_view data) {
    reply->bytes += data.size();
    if (keep_body && reply->body.size() + data.size() <= limit) reply->body.append(data);
  };
  callbacks.on_done = [this, kind, reply, started, id,
                       done = std::move(done)](const http::FetchResult& result) {
    in_flight_.erase(std::remove(in_flight_.begin(), in_flight_.end(), *id), in_flight_.end());
    const double now = ctx_.now();
    reply->status = result.ok ? result.status : 0;
    reply->latency_s = now - started;
    // A queue place or a busy sign-in is the deployment's planned answer, not a failure.
    const bool planned = (reply->status == 503 || reply->status == 429) && reply->retry_after_s > 0;
    ctx_.recorder.request(kind, now, reply->latency_s, reply->status, reply->bytes, planned);
    done(std::move(*reply));
  };
  *id = client().fetch(std::move(request), std::move(callbacks));
  in_flight_.push_back(*id);
}

void Viewer::after(core::LoopTimer& timer, double seconds) {
  timer.start(std::chrono::microseconds(static_cast<int64_t>(std::max(0.0, seconds) * 1e6)));
}

void Viewer::step_in(double seconds, std::function<void()> step) {
  next_step_ = std::move(step);
  after(step_timer_, seconds);
}

void Viewer::fail(const std::string& reason) {
  if (stopped()) return;
  ctx_.recorder.fatal(reason);
  leave();
  phase_ = Phase::failed;
}

std::string Viewer::balancer_url(std::string url) const {
  return with_query_param(url, "cache", cache_);
}

std::vector<http::HttpHeader> Viewer::auth_headers() const {
  if (token_.empty()) return {};
  return {{"Authorization", "Bearer " + token_}};
}

void Viewer::sign_in_ahead() {
  phase_ = Phase::signing_in;
  login();
}

void Viewer::arrive(bool play) {
  if (arrived_ || stopped()) return;
  arrived_ = true;
  if (play) {
    play_pressed_ = true;
    pressed_at_ = ctx_.now();
    buffer_.press_play(pressed_at_);
  }
  if (phase_ == Phase::signing_in) return;  // signing in ahead: goes on once signed in
  if (!token_.empty()) {
    refresh();
  } else if (ctx_.scenario.player.sign_in) {
    phase_ = Phase::signing_in;
    login();
  } else {
    phase_ = Phase::ready;
    if (play_pressed_) check_access();
  }
}

void Viewer::press_play() {
  if (stopped() || play_pressed_) return;
  play_pressed_ = true;
  pressed_at_ = ctx_.now();
  buffer_.press_play(pressed_at_);
  if (phase_ == Phase::ready) check_access();
}

void Viewer::login() {
  std::string name = ctx_.scenario.player.login;
  if (const size_t at = name.find("{n}"); at != std::string::npos)
    name.replace(at, 3, std::to_string(number_));
  http::FetchRequest r;
  r.url = ctx_.scenario.balancer + "/api/v1/auth/login";
  r.method = "POST";
  r.headers = {{"Content-Type", "application/json"}};
  r.body = "{\"login\":" + core::json_string(name) +
           ",\"password\":" + core::json_string(ctx_.scenario.player.password) + "}";
  request(RequestKind::login, std::move(r), true, [this](Reply reply) {
    if (stopped()) return;
    if (reply.status == 200) {
      rapidjson::Document doc;
      if (core::parse_json(reply.body, doc).ok()) token_ = string_member(doc, "token");
      if (token_.empty()) return fail("login_reply_without_token");
      attempts_ = 0;
      if (!arrived_) {
        phase_ = Phase::home;
        return;
      }
      list_channels();
      return;
    }
    if ((reply.status == 503 || reply.status == 429) &&
        ctx_.now() - pressed_at_ < ctx_.scenario.player.queue_max_wait_s) {
      // The API spreads a storm with its computed Retry-After: follow it, as the app does.
      return step_in(std::max(1.0, reply.retry_after_s), [this] { login(); });
      return;
    }
    if (++attempts_ > ctx_.scenario.player.retries)
      return fail("login_" + std::to_string(reply.status));
    step_in(backoff_s(attempts_), [this] { login(); });
  });
}

// The app at start: the session signed in before is refreshed, no password check.
void Viewer::refresh() {
  phase_ = Phase::signing_in;
  http::FetchRequest r;
  r.url = ctx_.scenario.balancer + "/api/v1/auth/refresh";
  r.method = "POST";
  r.headers = auth_headers();
  request(RequestKind::refresh, std::move(r), false, [this](Reply reply) {
    if (stopped()) return;
    if (reply.status == 200) {
      attempts_ = 0;
      return list_channels();
    }
    if (reply.status == 401) {  // expired or revoked: sign in again
      token_.clear();
      return login();
    }
    if (++attempts_ > ctx_.scenario.player.retries)
      return fail("refresh_" + std::to_string(reply.status));
    step_in(reply.retry_after_s > 0 ? reply.retry_after_s : backoff_s(attempts_),
            [this] { refresh(); });
  });
}

void Viewer::list_channels() {
  http::FetchRequest r;
  r.url = ctx_.scenario.balancer + "/api/v1/channels";
  r.headers = auth_headers();
  request(RequestKind::channels, std::move(r), false, [this](Reply reply) {
    if (stopped()) return;
    if (reply.status != 200) {
      if (++attempts_ > ctx_.scenario.player.retries)
        return fail("channels_" + std::to_string(reply.status));
      return step_in(backoff_s(attempts_), [this] { list_channels(); });
    }
    attempts_ = 0;
    phase_ = Phase::ready;
    if (play_pressed_) check_access();
  });
}

void Viewer::check_access() {
  if (stopped()) return;
  if (phase_ != Phase::queued) phase_ = Phase::access;
  const Scenario& s = ctx_.scenario;
  std::string url = s.balancer + "/api/v1/access?channel=" + s.channel;
  if (token_.empty()) url += "&viewer=" + id_;
  url = balancer_url(url);
  http::FetchRequest r;
  r.url = std::move(url);
  r.headers = auth_headers();
  request(RequestKind::access, std::move(r), true, [this](Reply reply) {
    if (stopped()) return;
    if (reply.status == 200) {
      rapidjson::Document doc;
      std::string playlist;
      if (core::parse_json(reply.body, doc).ok()) playlist = string_member(doc, "playlist_url");
      if (!playlist.empty()) {
        master_url_ = playlist.rfind("http", 0) == 0 ? playlist : ctx_.scenario.balancer + playlist;
      } else {
        master_url_ = ctx_.scenario.balancer + ctx_.scenario.playlist;
        master_url_ = with_query_param(master_url_, "viewer", id_);
      }
      attempts_ = 0;
      admitted();
      return;
    }
    if (reply.status == 404 && !ctx_.scenario.playlist.empty()) {
      // No REST API in this deployment: the playlist request is the access check.
      master_url_ =
          with_query_param(ctx_.scenario.balancer + ctx_.scenario.playlist, "viewer", id_);
      attempts_ = 0;
      admitted();
      return;
    }
    on_queue_reply(reply, [this] { check_access(); });
  });
}

// A 503 with a queue place (access check or playlist): keep the ticket, ask again after
// Retry-After. Anything else is retried with backoff and then fatal.
void Viewer::on_queue_reply(const Reply& reply, const std::function<void()>& again) {
  const double now = ctx_.now();
  rapidjson::Document doc;
  const rapidjson::Value* queue = nullptr;
  if (reply.status == 503 && core::parse_json(reply.body, doc).ok()) queue = member(doc, "queue");
  if (queue && queue->IsObject()) {
    if (!was_queued_) {
      was_queued_ = true;
      queue_since_ = now;
      queue_record_.queued_at_s = now;
    }
    if (const auto* told = member(*queue, "estimated_wait_s"); told && told->IsNumber()) {
      if (queue_record_.told.size() < 64) queue_record_.told.emplace_back(now, told->GetDouble());
    } else {
      ++queue_record_.answers_without_estimate;
    }
    queue_record_.ticket = static_cast<uint64_t>(number_member(*queue, "ticket", 0));
    queue_record_.last_told_wait_at_s = now;
    phase_ = Phase::queued;
    if (now - queue_since_ > ctx_.scenario.player.queue_max_wait_s) return fail("queue_gave_up");
    return step_in(std::max(1.0, reply.retry_after_s), again);
  }
  if ((reply.status == 503 || reply.status == 429) && reply.retry_after_s > 0 &&
      ++attempts_ <= 20) {
    return step_in(reply.retry_after_s, again);  // busy: the deployment says when
  }
  if (++attempts_ > ctx_.scenario.player.retries) {
    return fail((phase_ == Phase::starting ? "master_" : "access_") +
                (reply.status ? std::to_string(reply.status) : std::string("transport")));
  }
  step_in(backoff_s(attempts_), again);
}

void Viewer::admitted() {
  if (was_queued_ && queue_record_.admitted_at_s <= 0) {
    queue_record_.admitted_at_s = ctx_.now();
    ctx_.recorder.queued(queue_record_);
  }
  phase_ = Phase::starting;
  load_master();
}

void Viewer::load_steering() {
  if (stopped() || steering_uri_.empty()) return;
  std::string url =
      with_query_param(steering_uri_, "_HLS_pathway", pathway_.empty() ? "." : pathway_);
  if (auto bps = throughput_.bps())
    url = with_query_param(url, "_HLS_throughput", std::to_string(static_cast<uint64_t>(*bps)));
  http::FetchRequest r;
  r.url = balancer_url(url);
  request(RequestKind::steering, std::move(r), true, [this](Reply reply) {
    if (stopped()) return;
    double ttl = 300;
    rapidjson::Document doc;
    if (reply.status == 200 && core::parse_json(reply.body, doc).ok() && doc.IsObject()) {
      ttl = std::clamp(number_member(doc, "TTL", 300), 1.0, 86400.0);
      const std::string reload = string_member(doc, "RELOAD-URI");
      if (!reload.empty()) {
        if (auto resolved = hls::resolve_uri(steering_uri_, reload)) steering_uri_ = *resolved;
      }
      // Clones: copies of a base pathway's variants under a new id, URIs with the
      // replacement host and parameters.
      if (const auto* clones = member(doc, "PATHWAY-CLONES"); clones && clones->IsArray()) {
        for (const auto& clone : clones->GetArray()) {
          const std::string base = string_member(clone, "BASE-ID"), id = string_member(clone, "ID");
          if (base.empty() || id.empty()) continue;
          if (std::any_of(variants_.begin(), variants_.end(),
                          [&](const Variant& v) { return v.pathway == id; }))
            continue;
          const auto* replacement = member(clone, "URI-REPLACEMENT");
          std::vector<Variant> added;
          for (const auto& v : variants_) {
            if (v.pathway != base) continue;
            Variant copy = v;
            copy.pathway = id;
            if (replacement) {
              const std::string host = string_member(*replacement, "HOST");
              if (!host.empty()) {
                const size_t scheme = copy.uri.find("://");
                const size_t slash = copy.uri.find('/', scheme + 3);
                copy.uri = copy.uri.substr(0, scheme + 3) + host +
                           (slash == std::string::npos ? "" : copy.uri.substr(slash));
              }
              if (const auto* params = member(*replacement, "PARAMS");
                  params && params->IsObject()) {
                for (const auto& param : params->GetObject()) {
                  if (param.value.IsString())
                    copy.uri =
                        with_query_param(copy.uri, param.name.GetString(), param.value.GetString());
                }
              }
            }
            added.push_back(std::move(copy));
          }
          variants_.insert(variants_.end(), added.begin(), added.end());
        }
      }
      pathway_priority_.clear();
      if (const auto* priority = member(doc, "PATHWAY-PRIORITY"); priority && priority->IsArray()) {
        for (const auto& p : priority->GetArray()) {
          if (p.IsString()) pathway_priority_.emplace_back(p.GetString());
        }
      }
      const double now = ctx_.now();
      for (const auto& p : pathway_priority_) {
        if (auto it = penalized_.find(p); it != penalized_.end() && it->second > now) continue;
        if (std::any_of(variants_.begin(), variants_.end(),
                        [&](const Variant& v) { return v.pathway == p; })) {
          pathway_ = p;
          break;
        }
      }
      choose_variant();
    }
    after(steering_timer_, ttl);
  });
}

bool Viewer::leave_pathway(double now) {
  penalized_[pathway_] = now + 300;
  // The manifest's order once it is loaded; before that, the master's (its pathways in the order
  // their variants are listed).
  std::vector<std::string> order = pathway_priority_;
  if (order.empty()) {
    for (const auto& v : variants_) {
      if (std::find(order.begin(), order.end(), v.pathway) == order.end())
        order.push_back(v.pathway);
    }
  }
  for (const auto& p : order) {
    if (p == pathway_) continue;
    if (auto it = penalized_.find(p); it != penalized_.end() && it->second > now) continue;
    if (std::none_of(variants_.begin(), variants_.end(),
                     [&](const Variant& v) { return v.pathway == p; }))
      continue;
    pathway_ = p;
    choose_variant();
    return true;
  }
  return false;
}

void Viewer::walk_out(const std::string& cache) {
  cache_ = cache;
}
void Viewer::walk_in() {
  cache_ = own_cache_;
}

void Viewer::leave() {
  if (stopped()) return;
  for (auto id : in_flight_) client().cancel(id);
  in_flight_.clear();
  segment_fetch_ = 0;
  media_loading_ = false;
  step_timer_.cancel();
  reload_timer_.cancel();
  segment_timer_.cancel();
  steering_timer_.cancel();
  phase_ = Phase::left;
}

void Viewer::sample(double now) {
  if (phase_ == Phase::left || phase_ == Phase::failed) return;
  buffer_.advance(now);
  if (const auto captured = buffer_.playing_program_date()) {
    const double behind = ctx_.wall_now() - *captured;
    ctx_.recorder.behind_live(now, behind);
    behind_live_sum_s_ += behind;
    behind_live_max_s_ = behind_live_samples_++ ? std::max(behind_live_max_s_, behind) : behind;
  }
  if (buffer_.stalls() > reported_stalls_) {
    reported_stalls_ = buffer_.stalls();
    ctx_.recorder.stall_began(buffer_.stall_began());
  }
}

void Viewer::finish(double now) {
  sample(now);
  if (was_queued_ && queue_record_.admitted_at_s <= 0) ctx_.recorder.queued(queue_record_);
  ctx_.recorder.viewer_end(buffer_.stalls(), buffer_.stalled_s(), buffer_.started());
  if (behind_live_samples_ > 0) {
    ctx_.recorder.viewer_behind_live(behind_live_sum_s_ / static_cast<double>(behind_live_samples_),
                                     behind_live_max_s_);
  }
}

}  // namespace audience
