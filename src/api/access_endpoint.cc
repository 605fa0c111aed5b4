// GET /api/v1/access?channel=<id>[&cache=<id>] (docs/api.md). Loop thread.
//
// With a session token: the channel must be free or unlocked by one of the
// user's purchases (else 403 not_entitled); then admission decides as for a
// playlist request of viewer "u<user id>/s<session tag>" (one stream per signed-in
// device, counted against account "u<user id>"), and an admitted user gets the
// master playlist URL with a playback ticket for that viewer (so its playlist
// requests hold the same slot) and the cache id the app chose. Without a token,
// the older call with ticket= or viewer= answers the same decision without a URL.
#include "api/api_state.h"
#include "core/json.h"
#include "core/url.h"
#include "signing/playback_ticket.h"

namespace api {

namespace {

void send_answer(http::HttpExchange& ex, const AdmissionAnswer& a) {
  for (const auto& h : a.headers) ex.add_header(h.name, h.value);
  no_store(ex);
  ex.reply(a.status, a.body);
}

const ChannelEntry* find_channel(const std::vector<ChannelEntry>& channels, const std::string& id) {
  for (const auto& c : channels) {
    if (c.id == id) return &c;
  }
  return nullptr;
}

void fail(http::HttpExchange& ex, int status, std::string_view code, std::string_view message) {
  no_store(ex);
  ex.reply_error(status, code, message);
}

}  // namespace

// The stream of one signed-in device: "<account>/<device>" (the balancer counts streams per
// account by the part before '/'). A session is a device's sign-in, and its token's hash (9 of
// its 32 bytes: no collision between one account's sessions in practice, and nothing that leads
// back to the token) names it, so the same device keeps its stream across access checks and
// token refreshes, and a second device signed in to the same account is a second stream.
std::string device_viewer_id(const SessionInfo& info) {
  return "u" + std::to_string(info.user.id) + "/s" +
         signing::base64url_encode(std::string_view(info.session.token_hash).substr(0, 9));
}

void Api::State::handle_access(core::EventLoop& loop, http::HttpExchange& in) {
  const std::string channel_id = in.query_param("channel").value_or("");
  if (channel_id.empty()) {
    return fail(in, 400, "bad_request", "Pass the channel: /api/v1/access?channel=<id>.");
  }
  const std::string cache = in.query_param("cache").value_or("");
  if (!cache.empty() && !signing::valid_channel_id(cache)) {
    return fail(in, 400, "bad_request",
                "The cache id may only use letters, digits, '-' and '_' (1 to 64).");
  }
  const std::vector<ChannelEntry> channels = host.channels();
  const ChannelEntry* found = find_channel(channels, channel_id);
  if (found == nullptr)
    return fail(in, 404, "unknown_channel", "No channel '" + channel_id + "' is configured.");
  const ChannelEntry channel = *found;

  if (!has_authorization(in)) return handle_anonymous_access(loop, in, channel);

  if (api_off(*this, in)) return;
  with_session(
      *this, loop, hold(in),
      [this, &loop, channel, cache](ExchangePtr ex, const SessionInfo& info) {
        store->list_purchases(
            loop, info.user.id,
            [this, &loop, ex, channel, cache,
             viewer_id = device_viewer_id(info)](core::Result<std::vector<Purchase>> purchases) {
              if (!purchases) return storage_failed(*this, *ex, "purchase list", purchases.error());
              const int64_t now = clock.unix_now();
              const auto cfg = config.load();
              int64_t expires = now + cfg->ticket_lifetime.count();
              if (!channel.free) {
                const std::optional<int64_t> until = entitled_until(*purchases, channel.id, now);
                if (!until) {
                  return fail(*ex, 403, "not_entitled",
                              "This paid channel is locked: buy the product '" + channel.product +
                                  "' to watch it.");
                }
                if (*until != 0) expires = std::min(expires, *until);
              }
              host.admit("t:" + viewer_id, channel.id, ex->remote_ip(), loop,
                         [this, ex, channel, cache, viewer_id, expires](const AdmissionAnswer& a) {
                           if (ex->closed()) return;
                           if (!a.admitted) return send_answer(*ex, a);
                           auto ticket = host.issue_ticket(channel.id, viewer_id, expires);
                           if (!ticket)
                             return fail(*ex, 500, "internal_error", ticket.error().message);
                           tickets_issued.inc();
                           std::string url = channel.playlist;
                           // Both are URL-safe as they are: base64url and '.', and the id alphabet.
                           core::append_query_param(url, "ticket", *ticket);
                           if (!cache.empty()) core::append_query_param(url, "cache", cache);
                           std::string out = "{\"access\":\"granted\",\"channel\":";
                           core::append_json_string(out, channel.id);
                           out += ",\"playlist_url\":";
                           core::append_json_string(out, url);
                           out += ",\"ticket_expires_at\":" + std::to_string(expires) + "}\n";
                           no_store(*ex);
                           ex->reply(200, out);
                         });
            });
      });
}

// The older call without a session: ticket= or viewer= names the viewer, and the answer is
// admission's decision without a URL.
void Api::State::handle_anonymous_access(core::EventLoop& loop, http::HttpExchange& in,
                                         const ChannelEntry& channel) {
  const std::string ticket = in.query_param("ticket").value_or("");
  const std::string viewer = in.query_param("viewer").value_or("");
  if (!viewer.empty() && !signing::valid_viewer_id(viewer)) {
    return fail(in, 400, "bad_request",
                "The viewer id must be 1 to 128 printable characters without spaces.");
  }
  auto key = host.viewer_key(channel.id, ticket, viewer);
  if (!key) {
    const std::string& code = key.error().code;
    const int status = code == "unknown_channel"                                  ? 404
                       : code == "ticket_wrong_channel" || code == "not_entitled" ? 403
                                                                                  : 401;
    return fail(in, status, code, key.error().message);
  }
  ExchangePtr held = hold(in);
  const std::string remote_ip = held->remote_ip();
  host.admit(*key, channel.id, remote_ip, loop,
             [ex = held, id = channel.id](const AdmissionAnswer& a) {
               if (ex->closed()) return;
               if (!a.admitted) return send_answer(*ex, a);
               std::string out = "{\"access\":\"granted\",\"channel\":";
               core::append_json_string(out, id);
               no_store(*ex);
               ex->reply(200, out + "}\n");
             });
}

}  // namespace api
