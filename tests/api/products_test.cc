// Products file parsing (every error names its key) and the rule that turns
// purchases into rights to channels, on fixed times.
#include <doctest/doctest.h>

#include "api/products.h"

using namespace api;

namespace {

core::Result<std::vector<Product>> parse(const std::string& text) {
  auto doc = core::ConfigDocument::parse("products.json", text, {});
  REQUIRE(doc.ok());
  return read_products(*doc);
}

bool fails_with(const std::string& text, const std::string& needle) {
  auto r = parse(text);
  if (r.ok()) return false;
  return r.error().code == "bad_config" && r.error().message.find(needle) != std::string::npos &&
         r.error().message.find("products.json") != std::string::npos;
}

Purchase bought(const std::vector<std::string>& unlocks, int64_t expires_at,
                ProductKind kind = ProductKind::channel) {
  Purchase p;
  p.kind = kind;
  p.unlocks = unlocks;
  p.created_at = 100;
  p.expires_at = expires_at;
  return p;
}

}  // namespace

TEST_CASE("a products file is read with kinds, prices, currencies and durations") {
  auto r = parse(R"({"products":[
    {"id":"pass","title":"Pass","kind":"channel","price":"4.99","currency":"EUR","unlocks":["a","b"],"duration_s":60},
    {"id":"vas","kind":"service","price":"0.50","currency":"USD","unlocks":["replays"]}]})");
  REQUIRE(r.ok());
  REQUIRE(r->size() == 2);
  CHECK((*r)[0].kind == ProductKind::channel);
  CHECK((*r)[0].unlocks == std::vector<std::string>{"a", "b"});
  CHECK((*r)[0].duration_s == 60);
  CHECK((*r)[1].title == "vas");  // title defaults to the id
  CHECK((*r)[1].duration_s == 0);
  CHECK(find_product(*r, "vas") == &(*r)[1]);
  CHECK(find_product(*r, "nope") == nullptr);
  CHECK(
      product_json((*r)[1]) ==
      R"({"id":"vas","title":"vas","kind":"service","price":"0.50","currency":"USD","unlocks":["replays"],"duration_s":null})");
}

TEST_CASE("a bad products file is refused naming the key") {
  const std::string ok_rest = R"("currency":"EUR","unlocks":["a"])";
  CHECK(fails_with(R"({"products":[{"id":"p","kind":"channel","price":"4.9",)" + ok_rest + "}]}",
                   "products[0].price"));
  CHECK(fails_with(R"({"products":[{"id":"p","kind":"channel","price":"04.90",)" + ok_rest + "}]}",
                   "products[0].price"));
  CHECK(fails_with(R"({"products":[{"id":"p","kind":"channel","price":4.99,)" + ok_rest + "}]}",
                   "products[0].price"));
  CHECK(fails_with(R"({"products":[{"id":"p","kind":"gift","price":"1.00",)" + ok_rest + "}]}",
                   "products[0].kind"));
  CHECK(fails_with(
      R"({"products":[{"id":"p","kind":"channel","price":"1.00","currency":"eur","unlocks":["a"]}]})",
      "products[0].currency"));
  CHECK(fails_with(
      R"({"products":[{"id":"p","kind":"channel","price":"1.00","currency":"EUR","unlocks":[]}]})",
      "products[0].unlocks"));
  CHECK(fails_with(R"({"products":[{"id":"p","kind":"channel","price":"1.00",)" + ok_rest +
                       R"(,"duration_s":-1}]})",
                   "products[0].duration_s"));
  CHECK(fails_with(
      R"({"products":[{"id":"p","kind":"channel","price":"1.00",)" + ok_rest + R"(,"colour":1}]})",
      "colour"));
  CHECK(fails_with(R"({"products":[{"id":"p","kind":"channel","price":"1.00",)" + ok_rest + R"(},
                     {"id":"p","kind":"channel","price":"1.00",)" +
                       ok_rest + "}]}",
                   "duplicate product id"));
  CHECK(fails_with(R"({"products":[{"id":"a b","kind":"channel","price":"1.00",)" + ok_rest + "}]}",
                   "products[0].id"));
  CHECK(fails_with(R"({"items":[]})", "products"));
}

TEST_CASE("purchases entitle to the channels they unlocked while active, the latest expiry wins") {
  const int64_t now = 1000;
  CHECK_FALSE(entitled_until({}, "a", now).has_value());
  CHECK(entitled_until({bought({"a"}, 2000)}, "a", now) == 2000);
  CHECK_FALSE(entitled_until({bought({"a"}, 2000)}, "b", now).has_value());
  // Expired at `now` exactly: no longer active.
  CHECK_FALSE(entitled_until({bought({"a"}, 1000)}, "a", now).has_value());
  CHECK(entitled_until({bought({"a"}, 1500), bought({"x", "a"}, 3000), bought({"a"}, 900)}, "a",
                       now) == 3000);
  // One that never expires wins over any date.
  CHECK(entitled_until({bought({"a"}, 1500), bought({"a"}, 0)}, "a", now) == 0);
  // A service purchase never unlocks a channel, even one with the same name.
  CHECK_FALSE(entitled_until({bought({"a"}, 0, ProductKind::service)}, "a", now).has_value());
  CHECK(unlocks_channel({bought({"a"}, 0)}, "a", now));
}

TEST_CASE("a purchase renders with its own kind, unlocks and activity") {
  Purchase p = bought({"a"}, 2000);
  p.id = 7;
  p.product_id = "pass";
  CHECK(
      purchase_json(p, 1000) ==
      R"({"id":7,"product_id":"pass","kind":"channel","unlocks":["a"],"created_at":100,"expires_at":2000,"active":true})");
  CHECK(purchase_json(p, 2000).find(R"("active":false)") != std::string::npos);
  p.expires_at = 0;
  CHECK(purchase_json(p, 5000).find(R"("expires_at":null,"active":true)") != std::string::npos);
}
