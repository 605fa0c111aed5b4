// POST /api/v1/purchases, GET /api/v1/purchases, GET /api/v1/purchases/{id}
// (docs/api.md). Loop thread; the receipt check and every store call come back
// on the same loop.
//
// A purchase is idempotent per user and client key: the key is looked up first
// (a replay never reaches the receipt verifier again), and the store records the
// purchase and its key in one transaction, so two racing requests with one key
// still make one purchase.
#include <charconv>

#include "api/api_state.h"

namespace api {

namespace {

constexpr size_t kMaxIdempotencyKey = 128;
constexpr size_t kMaxReceipt = 4096;
constexpr std::string_view kPurchasePrefix = "/api/v1/purchases/";

// The answer for `outcome` of a request for `product_id`: the same key with
// another product is a conflict, never a second purchase.
void answer_outcome(Api::State& s, http::HttpExchange& ex, const PurchaseOutcome& outcome,
                    const std::string& product_id) {
  no_store(ex);
  if (outcome.purchase.product_id != product_id) {
    return ex.reply_error(
        409, "idempotency_conflict",
        "This idempotency key was already used for a purchase of another product.");
  }
  (outcome.created ? s.purchases_created : s.purchases_replayed).inc();
  ex.reply(outcome.created ? 201 : 200,
           "{\"purchase\":" + purchase_json(outcome.purchase, s.clock.unix_now()) + "}");
}

}  // namespace

void Api::State::handle_purchase(core::EventLoop& loop, http::HttpExchange& in) {
  if (api_off(*this, in)) return;
  auto cfg = config.load();
  rapidjson::Document doc;
  if (!parse_json_body(*this, *cfg, in, doc)) return;
  std::string product_id, key, receipt;
  if (!string_field(in, doc, "product_id", 64, true, product_id) ||
      !string_field(in, doc, "idempotency_key", kMaxIdempotencyKey, true, key) ||
      !string_field(in, doc, "receipt", kMaxReceipt, false, receipt)) {
    return;
  }
  with_session(
      *this, loop, hold(in),
      [this, &loop, cfg, product_id, key, receipt](ExchangePtr ex, const SessionInfo& info) {
        const Product* product = find_product(cfg->products, product_id);
        if (product == nullptr) {
          no_store(*ex);
          return ex->reply_error(404, "unknown_product",
                                 "No product '" + product_id + "' is on sale.");
        }
        const uint64_t user_id = info.user.id;
        store->find_purchase_by_key(
            loop, user_id, key,
            [this, &loop, ex, cfg, product = *product, user_id, key,
             receipt](core::Result<std::optional<Purchase>> earlier) mutable {
              if (!earlier) return storage_failed(*this, *ex, "purchase lookup", earlier.error());
              if (earlier->has_value())
                return answer_outcome(*this, *ex, {std::move(**earlier), false}, product.id);
              receipts->verify(
                  loop, product, user_id, std::move(receipt),
                  [this, &loop, ex, product, user_id, key](core::Result<std::string> ref) {
                    if (!ref) {
                      no_store(*ex);
                      return ex->reply_error(402, ref.error().code, ref.error().message);
                    }
                    Purchase p;
                    p.user_id = user_id;
                    p.product_id = product.id;
                    p.kind = product.kind;
                    p.unlocks = product.unlocks;
                    p.idempotency_key = key;
                    p.receipt_ref = std::move(ref).value();
                    p.created_at = clock.unix_now();
                    p.expires_at = product.duration_s > 0 ? p.created_at + product.duration_s : 0;
                    store->create_purchase(
                        loop, std::move(p),
                        [this, ex, product_id = product.id](core::Result<PurchaseOutcome> outcome) {
                          if (!outcome)
                            return storage_failed(*this, *ex, "purchase write", outcome.error());
                          answer_outcome(*this, *ex, *outcome, product_id);
                        });
                  });
            });
      });
}

void Api::State::handle_purchases(core::EventLoop& loop, http::HttpExchange& in) {
  if (api_off(*this, in)) return;
  with_session(*this, loop, hold(in), [this, &loop](ExchangePtr ex, const SessionInfo& info) {
    store->list_purchases(loop, info.user.id, [this, ex](core::Result<std::vector<Purchase>> list) {
      if (!list) return storage_failed(*this, *ex, "purchase list", list.error());
      const int64_t now = clock.unix_now();
      std::string out = "{\"purchases\":[";
      for (size_t i = 0; i < list->size(); ++i) {
        if (i) out += ',';
        out += purchase_json((*list)[i], now);
      }
      out += "]}";
      no_store(*ex);
      ex->reply(200, out);
    });
  });
}

void Api::State::handle_purchase_by_id(core::EventLoop& loop, http::HttpExchange& in) {
  if (api_off(*this, in)) return;
  const std::string text = in.path().substr(kPurchasePrefix.size());
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (text.empty() || text.size() > 19 || ec != std::errc() || end != text.data() + text.size() ||
      id == 0 || text[0] == '0') {
    return in.reply_error(400, "invalid_field", "The purchase id must be a positive integer.");
  }
  with_session(*this, loop, hold(in), [this, &loop, id](ExchangePtr ex, const SessionInfo& info) {
    store->find_purchase(
        loop, id, [this, ex, user_id = info.user.id](core::Result<std::optional<Purchase>> found) {
          if (!found) return storage_failed(*this, *ex, "purchase lookup", found.error());
          no_store(*ex);
          // Another user's purchase is answered like a missing one: ids reveal nothing.
          if (!found->has_value() || (**found).user_id != user_id) {
            return ex->reply_error(404, "not_found", "You have no purchase with this id.");
          }
          ex->reply(200, "{\"purchase\":" + purchase_json(**found, clock.unix_now()) + "}");
        });
  });
}

}  // namespace api
