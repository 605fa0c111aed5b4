// GET /api/v1/channels, /api/v1/products and /api/v1/caches (docs/api.md).
// Loop thread.
#include "api/api_state.h"
#include "core/json.h"

namespace api {

// Every channel with locked/unlocked for the session's user.
void Api::State::handle_channels(core::EventLoop& loop, http::HttpExchange& in) {
  if (api_off(*this, in)) return;
  with_session(*this, loop, hold(in), [this, &loop](ExchangePtr ex, const SessionInfo& info) {
    store->list_purchases(
        loop, info.user.id, [this, ex](core::Result<std::vector<Purchase>> purchases) {
          if (!purchases) return storage_failed(*this, *ex, "purchase list", purchases.error());
          const int64_t now = clock.unix_now();
          std::string out = "{\"channels\":[";
          bool first = true;
          for (const ChannelEntry& c : host.channels()) {
            const bool locked = !c.free && !unlocks_channel(*purchases, c.id, now);
            out += first ? "{\"id\":" : ",{\"id\":";
            first = false;
            core::append_json_string(out, c.id);
            out += ",\"title\":";
            core::append_json_string(out, c.title);
            out += std::string(",\"free\":") + (c.free ? "true" : "false") +
                   ",\"locked\":" + (locked ? "true" : "false") + ",\"product\":";
            if (c.free) {
              out += "null";
            } else {
              core::append_json_string(out, c.product);
            }
            out += ",\"playlist\":";
            core::append_json_string(out, c.playlist);
            out += "}";
          }
          out += "]}";
          no_store(*ex);
          ex->reply(200, out);
        });
  });
}

void Api::State::handle_products(http::HttpExchange& ex) {
  auto cfg = config.load();
  std::string out = "{\"products\":[";
  for (size_t i = 0; i < cfg->products.size(); ++i) {
    if (i) out += ',';
    out += product_json(cfg->products[i]);
  }
  out += "]}";
  ex.add_header("Cache-Control", "max-age=60");
  ex.reply(200, out);
}

// The cache nodes the app should ping: the healthy ones only, as the balancer sees them now.
void Api::State::handle_caches(http::HttpExchange& ex) {
  std::string out = "{\"caches\":[";
  bool first = true;
  for (const CacheEntry& c : host.usable_caches()) {
    out += first ? "{\"id\":" : ",{\"id\":";
    first = false;
    core::append_json_string(out, c.id);
    out += ",\"site\":";
    core::append_json_string(out, c.site);
    out += ",\"ping_url\":";
    core::append_json_string(out, c.ping_url);
    out += "}";
  }
  out += "]}";
  no_store(ex);
  ex.reply(200, out);
}

}  // namespace api
