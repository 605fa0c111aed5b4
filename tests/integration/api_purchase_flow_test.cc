// The REST API's channels, products, purchases, cache list and access check
// against the real balancer binary, real LMDB files, a real cache node and ffmpeg
// as the player (DESIGN.md flow 5, docs/api.md): login → channels (paid locked)
// → purchase → unlocked → access → the ticketed playlist plays through the cache
// node; idempotent purchases; bad input with nothing stored; kill -9 right after
// a 201; receipts refused without demo payments; the queue; healthy caches only.
// Every API response is validated against docs/openapi.json (api_fixture.h).
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "support/api_fixture.h"
#include "support/cache_node_fixture.h"
#include "support/ffmpeg_args.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

const std::string kProducts = R"({"products":[
  {"id":"pass","title":"Premium pass","kind":"channel","price":"4.99","currency":"EUR","unlocks":["premium"],"duration_s":3600},
  {"id":"forever","title":"Premium for ever","kind":"channel","price":"49.00","currency":"EUR","unlocks":["premium"]},
  {"id":"replays","title":"Replays","kind":"service","price":"0.99","currency":"EUR","unlocks":["replays"]}]})";

std::string paid_channel(const std::string& id, const std::string& source,
                         const std::string& product) {
  return "{\"id\":\"" + id + "\",\"title\":\"Premium\",\"origin\":\"demo\",\"source\":\"" + source +
         "\",\"product\":\"" + product + "\"}";
}

ApiStackOptions store_options(std::vector<std::string> extra = {}) {
  ApiStackOptions o;
  o.products = kProducts;
  o.channels = channels_json({channel_json("demo", "/live/master.m3u8"),
                              paid_channel("premium", "/vod/index.m3u8", "pass")});
  o.overrides = {"api.demo_payments=true"};
  for (auto& e : extra) o.overrides.push_back(std::move(e));
  return o;
}

std::string purchase_body(const std::string& product, const std::string& key,
                          const std::string& receipt = "r-1") {
  return "{\"product_id\":\"" + product + "\",\"idempotency_key\":\"" + key + "\",\"receipt\":\"" +
         receipt + "\"}";
}

// The channel `id` of a /api/v1/channels answer.
const rapidjson::Value* find_entry(const rapidjson::Document& doc, const char* list,
                                   const std::string& id) {
  for (const auto& c : doc[list].GetArray()) {
    if (c["id"].GetString() == id) return &c;
  }
  return nullptr;
}

size_t purchase_count(ApiStack& api, const std::string& token) {
  auto r = api.get("/api/v1/purchases", token);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  return parse_json(r.body)["purchases"].GetArray().Size();
}

// ffmpeg writes a 6 s VOD HLS stream (1 s segments) into <root>/vod.
bool make_vod(const std::string& root) {
  std::filesystem::create_directories(root + "/vod");
  ChildProcess ffmpeg;
  if (!ffmpeg.start({"ffmpeg",
                     "-hide_banner",
                     "-loglevel",
                     "error",
                     "-f",
                     "lavfi",
                     "-i",
                     "testsrc2=size=320x180:rate=25",
                     "-f",
                     "lavfi",
                     "-i",
                     "sine=frequency=440:sample_rate=48000",
                     "-t",
                     "6",
                     "-c:v",
                     "libx264",
                     "-preset",
                     "ultrafast",
                     "-g",
                     "25",
                     "-pix_fmt",
                     "yuv420p",
                     "-c:a",
                     "aac",
                     "-b:a",
                     "64k",
                     "-f",
                     "hls",
                     "-hls_time",
                     "1",
                     "-hls_playlist_type",
                     "vod",
                     "-hls_segment_filename",
                     root + "/vod/seg_%03d.ts",
                     root + "/vod/index.m3u8"})) {
    return false;
  }
  auto code = ffmpeg.wait_exit(deadline_in(60s));
  return code.has_value() && *code == 0;
}

}  // namespace

TEST_CASE(
    "login, a locked paid channel, a purchase that unlocks it, access with a ticket, and ffmpeg "
    "plays it through the cache node") {
  SKIP_WITHOUT_FFMPEG();
  ApiStack api(store_options());
  REQUIRE(make_vod(api.dir.file("root")));
  CacheNodeProcess node(api.dir.file("cache"), api.origin->url("/files"),
                        {"node_id=venue-a", "site=venue"});
  api.balancer->write_caches(caches_json({cache_json("venue-a", "venue", node.port())}));
  REQUIRE(api.balancer->reload());
  REQUIRE(api.balancer->wait_cache_usable("venue-a", true, 10s));

  const std::string token = api.user_token("fdpd6", "123456");
  // The channels: free unlocked, paid locked with its product.
  auto channels = api.get("/api/v1/channels", token);
  REQUIRE_MESSAGE(channels.status == 200, channels.body);
  CHECK(channels.header("Cache-Control").value_or("") == "no-store");
  auto list = parse_json(channels.body);
  const auto* premium = find_entry(list, "channels", "premium");
  const auto* free_channel = find_entry(list, "channels", "demo");
  REQUIRE(premium != nullptr);
  REQUIRE(free_channel != nullptr);
  CHECK_FALSE((*premium)["free"].GetBool());
  CHECK((*premium)["locked"].GetBool());
  CHECK((*premium)["product"].GetString() == std::string("pass"));
  CHECK((*premium)["playlist"].GetString() == std::string("/hls/premium/vod/index.m3u8"));
  CHECK_FALSE((*free_channel)["locked"].GetBool());
  CHECK((*free_channel)["product"].IsNull());

  // Locked: no access, and the playlist refuses a made-up viewer.
  auto locked = api.get("/api/v1/access?channel=premium&cache=venue-a", token);
  CHECK(locked.status == 403);
  CHECK(error_code(locked) == "not_entitled");
  auto made_up = api.balancer->get("/hls/premium/vod/index.m3u8?viewer=me");
  CHECK(made_up.status == 403);
  CHECK(is_json_error(made_up, "not_entitled"));
  CHECK(api.balancer->get("/hls/premium/vod/index.m3u8").status == 401);
  auto legacy_made_up = api.get("/api/v1/access?channel=premium&viewer=me");
  CHECK(legacy_made_up.status == 403);

  // The cache list the app pings.
  auto caches = api.get("/api/v1/caches");
  REQUIRE(caches.status == 200);
  auto cache_doc = parse_json(caches.body);
  const auto* venue = find_entry(cache_doc, "caches", "venue-a");
  REQUIRE(venue != nullptr);
  CHECK((*venue)["ping_url"].GetString() == node.url("/ping"));
  auto ping = http_get((*venue)["ping_url"].GetString());
  CHECK(ping.status == 200);
  CHECK(ping.header("Access-Control-Allow-Origin").value_or("") == "*");

  // Buy the pass.
  auto bought = api.post("/api/v1/purchases", purchase_body("pass", "order-1"), token);
  REQUIRE_MESSAGE(bought.status == 201, bought.body);
  auto purchase = parse_json(bought.body);
  CHECK(purchase["purchase"]["product_id"].GetString() == std::string("pass"));
  CHECK(purchase["purchase"]["active"].GetBool());
  CHECK(purchase["purchase"]["expires_at"].GetInt64() -
            purchase["purchase"]["created_at"].GetInt64() ==
        3600);
  auto unlocked = parse_json(api.get("/api/v1/channels", token).body);
  CHECK_FALSE((*find_entry(unlocked, "channels", "premium"))["locked"].GetBool());

  // Access: the playlist URL with a ticket and the chosen cache.
  auto granted = api.get("/api/v1/access?channel=premium&cache=venue-a", token);
  REQUIRE_MESSAGE(granted.status == 200, granted.body);
  auto access_doc = parse_json(granted.body);
  const std::string playlist_url = access_doc["playlist_url"].GetString();
  CHECK(playlist_url.rfind("/hls/premium/vod/index.m3u8?ticket=", 0) == 0);
  CHECK(playlist_url.find("&cache=venue-a") != std::string::npos);
  // The ticket ends with the pass at the latest.
  CHECK(access_doc["ticket_expires_at"].GetInt64() <=
        purchase["purchase"]["expires_at"].GetInt64());

  // The ticketed playlist leads to the cache node, and ffmpeg plays all of it.
  auto media = api.balancer->get(playlist_url);
  REQUIRE_MESSAGE(media.status == 200, media.body);
  const auto links = uri_lines(media.body);
  REQUIRE(links.size() >= 5);
  for (const auto& l : links) CHECK(l.rfind(node.url("/"), 0) == 0);
  ChildProcess player;
  REQUIRE(player.start({"ffmpeg", "-hide_banner", "-loglevel", "error", "-i",
                        api.balancer->url(playlist_url), "-f", "null", "-"}));
  auto exit_code = player.wait_exit(deadline_in(60s));
  REQUIRE(exit_code.has_value());
  CHECK_MESSAGE(*exit_code == 0, player.stderr_text());
  // Every segment came from origin once, through the cache node.
  for (int i = 0; i < static_cast<int>(links.size()); ++i) {
    char name[32];
    snprintf(name, sizeof name, "/files/vod/seg_%03d.ts", i);
    CHECK_MESSAGE(api.origin->count(name) == 1, name);
  }
  const auto node_fetches =
      metric_value(http_get(node.url("/metrics")).body, "cache_origin_fetches_total");
  CHECK(node_fetches.value_or(0) >= static_cast<double>(links.size()));

  // The same ticket on the free channel is for another channel.
  const std::string ticket = playlist_url.substr(
      playlist_url.find("ticket=") + 7, playlist_url.find('&') - playlist_url.find("ticket=") - 7);
  auto wrong_channel = api.balancer->get("/hls/demo/live/master.m3u8?ticket=" + ticket);
  CHECK(wrong_channel.status == 403);
  // The legacy access call with that ticket answers the same decision.
  auto legacy = api.get("/api/v1/access?channel=premium&ticket=" + ticket);
  CHECK(legacy.status == 200);

  // Logout: the token no longer opens the API.
  REQUIRE(api.logout(token).status == 200);
  CHECK(api.get("/api/v1/channels", token).status == 401);
  CHECK(api.get("/api/v1/access?channel=premium", token).status == 401);
}

TEST_CASE(
    "a purchase is idempotent per key: a replay answers the same purchase, never a second one") {
  ApiStack api(store_options());
  const std::string token = api.user_token("alice", "pw");
  auto first = api.post("/api/v1/purchases", purchase_body("pass", "key-1"), token);
  REQUIRE_MESSAGE(first.status == 201, first.body);
  auto replay =
      api.post("/api/v1/purchases", purchase_body("pass", "key-1", "another receipt"), token);
  CHECK(replay.status == 200);
  CHECK(parse_json(replay.body)["purchase"]["id"].GetUint64() ==
        parse_json(first.body)["purchase"]["id"].GetUint64());
  auto conflict = api.post("/api/v1/purchases", purchase_body("replays", "key-1"), token);
  CHECK(conflict.status == 409);
  CHECK(error_code(conflict) == "idempotency_conflict");
  CHECK(purchase_count(api, token) == 1);
  // Another user's key space is its own.
  const std::string bob = api.user_token("bob", "pw");
  CHECK(api.post("/api/v1/purchases", purchase_body("pass", "key-1"), bob).status == 201);
  // A service purchase is listed with what it unlocks, newest first.
  auto service = api.post("/api/v1/purchases", purchase_body("replays", "key-2"), token);
  REQUIRE(service.status == 201);
  auto history = parse_json(api.get("/api/v1/purchases", token).body);
  REQUIRE(history["purchases"].GetArray().Size() == 2);
  CHECK(history["purchases"][0]["product_id"].GetString() == std::string("replays"));
  CHECK(history["purchases"][0]["kind"].GetString() == std::string("service"));
  CHECK(history["purchases"][0]["expires_at"].IsNull());
  CHECK(api.balancer->metric("balancer_api_purchases_total{result=\"created\"}") == 3);
  CHECK(api.balancer->metric("balancer_api_purchases_total{result=\"replayed\"}") == 1);
  // Products are public.
  auto products = parse_json(api.get("/api/v1/products").body);
  REQUIRE(products["products"].GetArray().Size() == 3);
  CHECK(products["products"][0]["price"].GetString() == std::string("4.99"));
  CHECK(products["products"][1]["duration_s"].IsNull());
}

TEST_CASE("bad purchase input gets its status and JSON error, and stores nothing") {
  ApiStack api(store_options({"api.max_body_bytes=1024"}));
  const std::string token = api.user_token("alice", "pw");
  const std::string bob = api.user_token("bob", "pw");
  auto bobs = api.post("/api/v1/purchases", purchase_body("pass", "b-1"), bob);
  REQUIRE(bobs.status == 201);
  const std::string bobs_id = std::to_string(parse_json(bobs.body)["purchase"]["id"].GetUint64());
  check_json_refusals(
      {
          {"{not json", 400, "malformed_json"},
          {"[1]", 400, "malformed_json"},
          {"", 400, "malformed_json"},
          {R"({"idempotency_key":"k","receipt":"r"})", 400, "missing_field"},
          {R"({"product_id":"pass","receipt":"r"})", 400, "missing_field"},
          {R"({"product_id":"pass","idempotency_key":"k"})", 400, "missing_field"},
          {R"({"product_id":7,"idempotency_key":"k","receipt":"r"})", 400, "invalid_field"},
          {R"({"product_id":"pass","idempotency_key":["k"],"receipt":"r"})", 400, "invalid_field"},
          {R"({"product_id":"pass","idempotency_key":"has space","receipt":"r"})", 400,
           "invalid_field"},
          {R"({"product_id":"pass","idempotency_key":"","receipt":"r"})", 400, "invalid_field"},
          {purchase_body("pass", std::string(129, 'k')), 400, "invalid_field"},
          {purchase_body("pass", "k", std::string(2000, 'r')), 413, "body_too_large"},
          {purchase_body("gold-bars", "k"), 404, "unknown_product"},
      },
      [&](const std::string& body) { return api.post("/api/v1/purchases", body, token); });
  // No token, a wrong method, another user's purchase, a bad id.
  CHECK(api.post("/api/v1/purchases", purchase_body("pass", "k")).status == 401);
  auto put = api.request("PUT", "/api/v1/purchases", token, purchase_body("pass", "k"));
  CHECK(put.status == 405);
  CHECK(put.header("Allow").value_or("").find("POST") != std::string::npos);
  CHECK(is_json_error(put, "method_not_allowed"));
  auto theirs = api.get("/api/v1/purchases/" + bobs_id, token);
  CHECK(theirs.status == 404);
  CHECK(is_json_error(theirs, "not_found"));
  CHECK(api.get("/api/v1/purchases/" + bobs_id, bob).status == 200);
  for (const char* id : {"0", "-1", "abc", "007", "99999999999999999999"}) {
    CAPTURE(id);
    CHECK(is_json_error(api.get(std::string("/api/v1/purchases/") + id, token), "invalid_field"));
  }
  CHECK(api.get("/api/v1/purchases/12345", token).status == 404);
  CHECK(purchase_count(api, token) == 0);
  CHECK(purchase_count(api, bob) == 1);
}

TEST_CASE("without demo payments a receipt is refused with 402 and nothing is stored") {
  ApiStackOptions o = store_options();
  o.overrides = {"api.demo_payments=false"};
  ApiStack api(o);
  const std::string token = api.user_token("alice", "pw");
  auto r = api.post("/api/v1/purchases", purchase_body("pass", "k-1"), token);
  CHECK(r.status == 402);
  CHECK(is_json_error(r, "receipt_rejected"));
  CHECK(purchase_count(api, token) == 0);
  CHECK(api.get("/api/v1/access?channel=premium", token).status == 403);
}

TEST_CASE(
    "kill -9 right after a 201: the purchase is there after the restart and still unlocks the "
    "channel") {
  ApiStack api(store_options());
  const std::string token = api.user_token("alice", "pw");
  auto r = api.post("/api/v1/purchases", purchase_body("forever", "k-1"), token);
  REQUIRE(r.status == 201);
  api.balancer->process().kill();
  REQUIRE(api.balancer->process().wait_exit(deadline_in(5s)).has_value());
  api.balancer->start();
  auto history = parse_json(api.get("/api/v1/purchases", token).body);
  REQUIRE(history["purchases"].GetArray().Size() == 1);
  CHECK(history["purchases"][0]["id"].GetUint64() ==
        parse_json(r.body)["purchase"]["id"].GetUint64());
  CHECK(api.get("/api/v1/access?channel=premium", token).status == 200);
  // The replay after the restart is still the same purchase.
  CHECK(api.post("/api/v1/purchases", purchase_body("forever", "k-1"), token).status == 200);
}

TEST_CASE(
    "access follows admission: at the stream limit a user queues with a position and Retry-After") {
  ApiStack api(store_options({"limits.max_streams=1"}));
  const std::string alice = api.user_token("alice", "pw");
  const std::string bob = api.user_token("bob", "pw");
  auto first = api.get("/api/v1/access?channel=demo", alice);
  REQUIRE_MESSAGE(first.status == 200, first.body);
  auto queued = api.get("/api/v1/access?channel=demo", bob);
  REQUIRE_MESSAGE(queued.status == 503, queued.body);
  CHECK(error_code(queued) == "queued");
  CHECK(queued.header("Retry-After").has_value());
  auto doc = parse_json(queued.body);
  CHECK(doc["queue"]["position"].GetInt() == 1);
  // Alice's playlist requests with her ticket hold the slot the access check gave her.
  const std::string url = parse_json(first.body)["playlist_url"].GetString();
  CHECK(api.balancer->get(url).status == 200);
  CHECK(api.get("/api/v1/access?channel=demo", bob).status == 503);
  // Unknown channel, missing channel, bad cache id.
  CHECK(is_json_error(api.get("/api/v1/access?channel=nope", alice), "unknown_channel"));
  CHECK(is_json_error(api.get("/api/v1/access", alice), "bad_request"));
  CHECK(is_json_error(api.get("/api/v1/access?channel=demo&cache=a%20b", alice), "bad_request"));
}

TEST_CASE("the cache list holds only usable cache nodes: a dead node leaves it") {
  ApiStack api(store_options());
  CacheNodeProcess node(api.dir.file("cache"), api.origin->url("/files"),
                        {"node_id=venue-a", "site=venue"});
  api.balancer->write_caches(
      caches_json({cache_json("venue-a", "venue", node.port()),
                   cache_json("venue-b", "venue", 9)}));  // nothing listens on port 9
  REQUIRE(api.balancer->reload());
  REQUIRE(api.balancer->wait_cache_usable("venue-a", true, 10s));
  auto listed = [&] {
    std::vector<std::string> ids;
    auto doc = parse_json(api.get("/api/v1/caches").body);
    for (const auto& c : doc["caches"].GetArray()) ids.emplace_back(c["id"].GetString());
    return ids;
  };
  CHECK(listed() == std::vector<std::string>{"venue-a"});
  node.kill_hard();
  CHECK(wait_until([&] { return listed().empty(); }, 10s, 100ms));
}
