// What can be bought (conf/products.json) and what a user's purchases unlock.
// Pure: no I/O but the config document, no clock (callers pass `now`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/result.h"

namespace api {

enum class ProductKind { channel, service };
const char* to_string(ProductKind kind);

struct Product {
  std::string id;  // [A-Za-z0-9_-]{1,64}
  std::string title;
  ProductKind kind = ProductKind::channel;
  std::string price;                 // decimal with two places, e.g. "4.99"
  std::string currency;              // ISO 4217, e.g. "EUR"
  std::vector<std::string> unlocks;  // channel ids (kind channel) or service names (kind service)
  int64_t duration_s = 0;            // 0: the purchase does not expire
  bool operator==(const Product&) const = default;
};

// Reads {"products":[...]} from `doc`. Every error names the file and the key
// ("bad_config"): unknown keys, wrong types, duplicate ids, a price that is not
// a two-place decimal, a currency that is not three capital letters.
core::Result<std::vector<Product>> read_products(const core::ConfigDocument& doc);

// A purchase as the store keeps it: what was bought, by whom, until when.
struct Purchase {
  uint64_t id = 0;
  uint64_t user_id = 0;
  std::string product_id;
  // What the product unlocked when it was bought: the right lasts even if the
  // operator later changes or withdraws the product.
  ProductKind kind = ProductKind::channel;
  std::vector<std::string> unlocks;
  std::string idempotency_key;  // the client's key, unique per user
  std::string receipt_ref;      // what the receipt verifier returned (never the receipt itself)
  int64_t created_at = 0;       // unix seconds
  int64_t expires_at = 0;       // 0: does not expire
  bool active(int64_t now) const { return expires_at == 0 || expires_at > now; }
};

// The product with `id` in `products`, or null.
const Product* find_product(const std::vector<Product>& products, const std::string& id);

// Until when `purchases` entitle their user to `channel` at `now`: nullopt when
// none active unlocks it (kind channel), 0 when one never expires, else the
// latest expiry among those that do.
std::optional<int64_t> entitled_until(const std::vector<Purchase>& purchases,
                                      const std::string& channel, int64_t now);
inline bool unlocks_channel(const std::vector<Purchase>& purchases, const std::string& channel,
                            int64_t now) {
  return entitled_until(purchases, channel, now).has_value();
}

// JSON of a product: {"id","title","kind","price","currency","unlocks":[...],"duration_s":N|null}.
std::string product_json(const Product& product);
// JSON of a purchase:
// {"id","product_id","kind","unlocks","created_at","expires_at":N|null,"active"}.
std::string purchase_json(const Purchase& purchase, int64_t now);

}  // namespace api
