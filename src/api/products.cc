#include "api/products.h"

#include <algorithm>
#include <set>

#include "core/json.h"
#include "signing/playback_ticket.h"

namespace api {

namespace {

bool valid_price(const std::string& p) {
  // digits "." two digits, no leading zeros but "0.xx", at most 9 integer digits
  const size_t dot = p.find('.');
  if (dot == std::string::npos || dot == 0 || dot > 9 || p.size() != dot + 3) return false;
  if (p[0] == '0' && dot > 1) return false;
  for (size_t i = 0; i < p.size(); ++i) {
    if (i != dot && (p[i] < '0' || p[i] > '9')) return false;
  }
  return true;
}

bool valid_currency(const std::string& c) {
  if (c.size() != 3) return false;
  for (char ch : c) {
    if (ch < 'A' || ch > 'Z') return false;
  }
  return true;
}

void append_string_list(std::string& out, const std::vector<std::string>& items) {
  out += '[';
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    core::append_json_string(out, items[i]);
  }
  out += ']';
}

}  // namespace

const char* to_string(ProductKind kind) {
  return kind == ProductKind::channel ? "channel" : "service";
}

core::Result<std::vector<Product>> read_products(const core::ConfigDocument& doc) {
  core::ConfigReader root(doc);
  std::vector<Product> products;
  std::set<std::string> ids;
  const bool present = doc.root().IsObject() && doc.root().HasMember("products");
  root.each_element("products", [&](size_t, core::ConfigReader& r) {
    Product p;
    p.id = r.required_string("id");
    if (!p.id.empty() && !signing::valid_channel_id(p.id))
      r.fail("id", "may only use letters, digits, '-' and '_' (1 to 64)");
    if (!p.id.empty() && !ids.insert(p.id).second)
      r.fail("id", "duplicate product id '" + p.id + "'");
    p.title = r.string("title", p.id);
    const std::string kind = r.required_string("kind");
    if (kind == "channel") {
      p.kind = ProductKind::channel;
    } else if (kind == "service") {
      p.kind = ProductKind::service;
    } else if (!kind.empty()) {
      r.fail("kind", "must be \"channel\" (unlocks channels) or \"service\" (an extra service)");
    }
    p.price = r.required_string("price");
    if (!p.price.empty() && !valid_price(p.price))
      r.fail("price", "must be a decimal string with two places, e.g. \"4.99\"");
    p.currency = r.required_string("currency");
    if (!p.currency.empty() && !valid_currency(p.currency))
      r.fail("currency", "must be an ISO 4217 code, e.g. \"EUR\"");
    p.unlocks = r.string_list("unlocks", {});
    if (p.unlocks.empty()) r.fail("unlocks", "must name at least one channel or service");
    for (const auto& u : p.unlocks) {
      if (!signing::valid_channel_id(u))
        r.fail("unlocks", "'" + u + "' is not an id (letters, digits, '-', '_')");
    }
    p.duration_s = r.integer("duration_s", 0, 0, int64_t{10} * 366 * 86400);
    products.push_back(std::move(p));
  });
  if (!present) root.fail("products", "is required (a list of products; may be empty)");
  root.finish();
  if (!root.ok()) return core::Error{"bad_config", root.error_text()};
  return products;
}

const Product* find_product(const std::vector<Product>& products, const std::string& id) {
  for (const auto& p : products) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

std::optional<int64_t> entitled_until(const std::vector<Purchase>& purchases,
                                      const std::string& channel, int64_t now) {
  std::optional<int64_t> until;
  for (const auto& purchase : purchases) {
    if (!purchase.active(now) || purchase.kind != ProductKind::channel) continue;
    bool covers = false;
    for (const auto& u : purchase.unlocks) covers = covers || u == channel;
    if (!covers) continue;
    if (purchase.expires_at == 0) return 0;
    until = std::max(until.value_or(0), purchase.expires_at);
  }
  return until;
}

std::string product_json(const Product& p) {
  std::string out = "{\"id\":";
  core::append_json_string(out, p.id);
  out += ",\"title\":";
  core::append_json_string(out, p.title);
  out += std::string(",\"kind\":\"") + to_string(p.kind) + "\",\"price\":";
  core::append_json_string(out, p.price);
  out += ",\"currency\":";
  core::append_json_string(out, p.currency);
  out += ",\"unlocks\":";
  append_string_list(out, p.unlocks);
  out +=
      ",\"duration_s\":" + (p.duration_s > 0 ? std::to_string(p.duration_s) : std::string("null")) +
      "}";
  return out;
}

std::string purchase_json(const Purchase& purchase, int64_t now) {
  std::string out = "{\"id\":" + std::to_string(purchase.id) + ",\"product_id\":";
  core::append_json_string(out, purchase.product_id);
  out += std::string(",\"kind\":\"") + to_string(purchase.kind) + "\",\"unlocks\":";
  append_string_list(out, purchase.unlocks);
  out += ",\"created_at\":" + std::to_string(purchase.created_at) + ",\"expires_at\":" +
         (purchase.expires_at > 0 ? std::to_string(purchase.expires_at) : std::string("null")) +
         ",\"active\":" + (purchase.active(now) ? "true" : "false") + "}";
  return out;
}

}  // namespace api
