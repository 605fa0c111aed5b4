// Several balancers, one audience (admission.backend: redis): two real balancer processes on one
// real redis-server started by the test. One stream limit and one FIFO queue across both, with
// true positions whichever balancer a viewer asks; the overload switch of one holds for both;
// a balancer killed with SIGKILL loses no slot and no queue place (its viewers go on at the
// other); Redis stopped mid-test: admitted viewers keep playing on their leases, new viewers get
// a 503 admission_unavailable with Retry-After (never an unlimited admit), and everything
// recovers by itself when Redis is back. With accounts on PostgreSQL (api.store: postgresql):
// a purchase made through one balancer unlocks the channel on the other, survives a kill -9 of
// the balancer right after its 201, and while PostgreSQL is stopped logins and purchases get a
// clear 503 while playback with a valid ticket goes on. Each device of an account is a stream of
// the fleet, bounded by limits.max_streams_per_account whichever balancer it asks.
#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <sys/wait.h>

#include <memory>
#include <string>
#include <vector>

#include "support/balancer_fixture.h"
#include "support/pg_server.h"
#include "support/redis_server.h"

using namespace balancer::test;
using namespace std::chrono_literals;

namespace {

const std::string kMaster =
    "#EXTM3U\n#EXT-X-VERSION:3\n"
    "#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720\nhi/index.m3u8\n";

struct Queue {
  uint64_t ticket = 0;
  uint64_t position = 0;
};

// The queue part of a 503 "queued" answer (ticket 0 when the answer is something else).
Queue queue_of(const HttpResponse& r) {
  if (r.status != 503) return {};
  rapidjson::Document doc;
  doc.Parse(r.body.data(), r.body.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("queue")) return {};
  return {doc["queue"]["ticket"].GetUint64(), doc["queue"]["position"].GetUint64()};
}

// An origin and two balancers sharing `redis` under one key prefix.
struct Fleet {
  explicit Fleet(const RedisServer& redis, std::vector<std::string> extra = {},
                 std::vector<std::string> channel_list = {
                     channel_json("demo", "/live/master.m3u8")}) {
    channels = channels_json(channel_list);
    write_file(origin_dir.file("root/live/master.m3u8"), kMaster);
    write_file(origin_dir.file("root/live/hi/index.m3u8"), live_playlist(10, 3));
    origin = std::make_unique<TestOrigin>(serving_files(origin_dir.file("root")));
    overrides = {"admission.backend=redis",
                 "admission.redis.host=127.0.0.1",
                 "admission.redis.port=" + std::to_string(redis.port()),
                 "admission.redis.timeout_ms=300",
                 "admission.redis.heartbeat_ms=200",
                 "limits.max_streams=3",
                 "limits.max_anonymous_per_address=0",
                 "queue.max_tickets_per_address=0",
                 "operator.key=fleet-operator-key-00001"};
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    a = start(dir_a);
    b = start(dir_b);
  }

  std::unique_ptr<BalancerProcess> start(const TempDir& dir) const {
    return std::make_unique<BalancerProcess>(dir, origin->url("/files"), channels, caches_json({}),
                                             overrides);
  }

  static HttpResponse play(const BalancerProcess& at, const std::string& viewer) {
    return at.get("/hls/demo/live/master.m3u8?viewer=" + viewer);
  }

  TempDir origin_dir, dir_a, dir_b;
  std::string channels;
  std::unique_ptr<TestOrigin> origin;
  std::vector<std::string> overrides;
  std::unique_ptr<BalancerProcess> a, b;
};

}  // namespace

TEST_CASE(
    "two balancers, max_streams 3: exactly 3 admitted; 1,000 more queued strictly FIFO across "
    "both") {
  RedisServer redis;
  Fleet f(redis);
  int admitted = 0;
  std::vector<Queue> queued;
  for (int i = 1; i <= 1004; ++i) {
    const BalancerProcess& at = i % 2 == 1 ? *f.a : *f.b;  // arrivals alternate
    const HttpResponse r = Fleet::play(at, "v" + std::to_string(i));
    if (r.status == 200) {
      ++admitted;
    } else {
      REQUIRE_MESSAGE(r.status == 503, r.body);
      CHECK(r.header("Retry-After").has_value());
      queued.push_back(queue_of(r));
    }
  }
  CHECK(admitted == 3);
  REQUIRE(queued.size() == 1001);
  int in_order = 0;
  for (size_t i = 0; i < queued.size(); ++i) {
    if (queued[i].position == i + 1 && (i == 0 || queued[i].ticket > queued[i - 1].ticket))
      ++in_order;
  }
  CHECK(in_order == 1001);
  // The fourth arrival is number 1 whichever balancer it asks, with the same ticket.
  const Queue via_a = queue_of(Fleet::play(*f.a, "v4"));
  const Queue via_b = queue_of(Fleet::play(*f.b, "v4"));
  CHECK(via_a.position == 1);
  CHECK(via_b.position == 1);
  CHECK(via_a.ticket == queued[0].ticket);
  CHECK(via_b.ticket == queued[0].ticket);
  // Both balancers report the fleet's numbers.
  REQUIRE(wait_until([&] { return f.b->metric("balancer_queue_length") == 1001; }, 5s));
  CHECK(f.a->metric("balancer_active_viewers") == 3);
  CHECK(f.b->metric("balancer_active_viewers") == 3);
}

TEST_CASE(
    "the overload switch on one balancer holds for the fleet; admitted viewers keep playing") {
  RedisServer redis;
  Fleet f(redis);
  REQUIRE(Fleet::play(*f.a, "alice").status == 200);
  const HttpResponse on = f.a->get("/access_queue_switch?state=on");
  REQUIRE_MESSAGE(on.status == 200, on.body);
  CHECK(on.body.find("\"emulation\":true,\"changed\":true") != std::string::npos);
  CHECK(queue_of(Fleet::play(*f.b, "bob")).position == 1);  // b admits no one new
  CHECK(Fleet::play(*f.a, "alice").status == 200);
  CHECK(Fleet::play(*f.b, "alice").status == 200);  // alice's slot is the fleet's, not a's
  const HttpResponse off = f.b->get("/access_queue_swith?state=off");
  CHECK(off.body.find("\"emulation\":false,\"changed\":true") != std::string::npos);
  CHECK(Fleet::play(*f.a, "bob").status == 200);  // the head claims the freed room
}

TEST_CASE(
    "devices of one account across the fleet: each is a stream, the switch queues the second, "
    "max_streams_per_account holds across both balancers") {
  RedisServer redis;
  Fleet f(redis, {"limits.max_streams_per_account=2"});
  // Tickets as the access check issues them: viewer "<account>/<device>".
  auto device = [](const BalancerProcess& at, const std::string& viewer) {
    return at.get("/hls/demo/live/hi/index.m3u8?ticket=" + make_ticket("demo", viewer));
  };
  REQUIRE(device(*f.a, "u7/phone").status == 200);
  REQUIRE(f.b->get("/access_queue_switch?state=on").status == 200);
  CHECK(queue_of(device(*f.b, "u7/tablet")).position == 1);  // the same account, queued
  CHECK(device(*f.b, "u7/phone").status == 200);             // the first plays on, anywhere
  const HttpResponse third = device(*f.a, "u7/tv");          // phone + waiting tablet = 2
  CHECK(third.status == 429);
  CHECK(is_json_error(third, "too_many_streams"));
  CHECK(third.header("Retry-After").has_value());
  CHECK(queue_of(device(*f.a, "u8/tv")).position == 2);  // another account only waits
  REQUIRE(f.a->get("/access_queue_switch?state=off").status == 200);
  CHECK(device(*f.a, "u7/tablet").status == 200);
  CHECK(device(*f.b, "u8/tv").status == 200);
  // Both balancers report the fleet's streams and the refusal.
  CHECK(wait_until(
      [&] {
        return f.a->metric("balancer_active_viewers") == 3 &&
               f.b->metric("balancer_active_viewers") == 3 &&
               f.b->metric("balancer_admission_refused_total{reason=\"per_account\"}") == 1;
      },
      5s));
}

TEST_CASE(
    "kill -9 of a balancer: its admitted and queued viewers go on at the other with slot and "
    "place") {
  RedisServer redis;
  Fleet f(redis);
  for (const char* v : {"v1", "v2", "v3"}) REQUIRE(Fleet::play(*f.a, v).status == 200);
  const Queue first = queue_of(Fleet::play(*f.a, "w1"));
  const Queue second = queue_of(Fleet::play(*f.a, "w2"));
  REQUIRE(first.position == 1);
  REQUIRE(second.position == 2);

  f.a->process().kill();
  REQUIRE(f.a->process().wait_exit(deadline_in(10s)).has_value());

  for (const char* v : {"v1", "v2", "v3"}) CHECK(Fleet::play(*f.b, v).status == 200);
  const Queue w2 = queue_of(Fleet::play(*f.b, "w2"));
  CHECK(w2.ticket == second.ticket);
  CHECK(w2.position == 2);
  CHECK(queue_of(Fleet::play(*f.b, "late")).position == 3);
}

TEST_CASE(
    "Redis stopped: leases keep admitted viewers playing, newcomers get 503 admission_unavailable; "
    "Redis back: recovery by itself, the limit holds") {
  RedisServer redis;
  Fleet f(redis);
  for (const char* v : {"v1", "v2", "v3"}) REQUIRE(Fleet::play(*f.a, v).status == 200);
  REQUIRE(queue_of(Fleet::play(*f.b, "w1")).position == 1);

  redis.stop();
  for (const char* v : {"v1", "v2", "v3"}) CHECK(Fleet::play(*f.a, v).status == 200);
  const HttpResponse refused = Fleet::play(*f.b, "newcomer");
  CHECK(refused.status == 503);
  CHECK(is_json_error(refused, "admission_unavailable"));
  CHECK(refused.header("Retry-After").has_value());
  CHECK(Fleet::play(*f.a, "newcomer2").status == 503);  // never an unlimited admit

  REQUIRE(redis.restart());  // empty: Redis lost everything
  // The balancers reconnect and a's heartbeats restore v1..v3; keep them playing meanwhile.
  bool restored = wait_until(
      [&] {
        for (const char* v : {"v1", "v2", "v3"}) Fleet::play(*f.a, v);
        return f.b->metric("balancer_active_viewers") == 3;
      },
      15s, 100ms);
  CHECK(restored);
  for (const char* v : {"v1", "v2", "v3"}) CHECK(Fleet::play(*f.b, v).status == 200);
  // w1's ticket was lost with Redis' data: it starts again, behind no one, and still waits.
  CHECK(queue_of(Fleet::play(*f.b, "w1")).position == 1);
  CHECK(queue_of(Fleet::play(*f.a, "newcomer")).position == 2);
}

namespace {

const std::string kProducts = R"({"products":[
  {"id":"pass","title":"Premium pass","kind":"channel","price":"4.99","currency":"EUR","unlocks":["premium"]}]})";

// `balancer user add LOGIN` against the fleet's PostgreSQL, the password on stdin.
void add_user(const Fleet& f, const std::string& login, const std::string& password) {
  std::string cmd =
      binary_path("balancer") + " user add " + login + " --config " + BALANCER_SOURCE_DIR +
      "/conf/balancer.json --set channels_file=" + f.dir_a.file("balancer/channels.json") +
      " --set caches_file=" + f.dir_a.file("balancer/caches.json");
  for (const auto& o : f.overrides) cmd += " --set '" + o + "'";
  cmd += " > " + f.origin_dir.file("user-add.out") + " 2>&1";
  FILE* p = popen(cmd.c_str(), "w");
  REQUIRE(p != nullptr);
  fputs((password + "\n").c_str(), p);
  const int status = pclose(p);
  REQUIRE_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), cmd);
}

HttpResponse api(const BalancerProcess& at, const std::string& method, const std::string& path,
                 const std::string& token = "", const std::string& body = "") {
  HttpHeaders headers;
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
  if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
  return http_request(method, at.url(path), headers, body);
}

std::string json_string(const std::string& body, const char* key) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  REQUIRE_MESSAGE((!doc.HasParseError() && doc.IsObject() && doc.HasMember(key)), body);
  return doc[key].GetString();
}

}  // namespace

TEST_CASE(
    "accounts on PostgreSQL: a purchase through A unlocks on B and survives kill -9 of A; "
    "PostgreSQL stopped: 503 for logins and purchases, playback goes on; back: recovery by "
    "itself") {
  RedisServer redis;
  PgServer pg;
  TempDir files("fleet-products");
  write_file(files.file("products.json"), kProducts);
  Fleet f(
      redis,
      {"api.store=postgresql", "api.postgresql.host=127.0.0.1",
       "api.postgresql.port=" + std::to_string(pg.port()), "api.postgresql.timeout_ms=500",
       "api.demo_payments=true", "api.products_file=" + files.file("products.json"),
       "api.kdf_memory_kib=64", "api.kdf_passes=1", "api.kdf_allow_weak_for_tests=true",
       "limits.max_streams=100"},
      {channel_json("demo", "/live/master.m3u8"),
       R"({"id":"premium","title":"Premium","origin":"demo","source":"/live/master.m3u8","product":"pass"})"});
  add_user(f, "alice", "alice-password");

  const HttpResponse login = api(*f.a, "POST", "/api/v1/auth/login", "",
                                 R"({"login":"alice","password":"alice-password"})");
  REQUIRE_MESSAGE(login.status == 200, login.body);
  const std::string token = json_string(login.body, "token");
  CHECK(api(*f.b, "GET", "/api/v1/access?channel=premium", token).status == 403);  // not bought yet

  const HttpResponse bought =
      api(*f.a, "POST", "/api/v1/purchases", token,
          R"({"product_id":"pass","idempotency_key":"order-1","receipt":"r-1"})");
  REQUIRE_MESSAGE(bought.status == 201, bought.body);
  f.a->process().kill();  // right after the 201
  REQUIRE(f.a->process().wait_exit(deadline_in(10s)).has_value());

  // B knows the session and the purchase: the channel is unlocked there.
  const HttpResponse access = api(*f.b, "GET", "/api/v1/access?channel=premium", token);
  REQUIRE_MESSAGE(access.status == 200, access.body);
  const std::string playlist = json_string(access.body, "playlist_url");
  CHECK(f.b->get(target_of(playlist)).status == 200);
  const HttpResponse replay =
      api(*f.b, "POST", "/api/v1/purchases", token,
          R"({"product_id":"pass","idempotency_key":"order-1","receipt":"r-1"})");
  CHECK(replay.status == 200);  // the same key: the same purchase, not a second one

  pg.stop();
  const HttpResponse no_login = api(*f.b, "POST", "/api/v1/auth/login", "",
                                    R"({"login":"alice","password":"alice-password"})");
  CHECK(no_login.status == 503);
  CHECK(is_json_error(no_login, "storage_unavailable"));
  CHECK(no_login.header("Retry-After").has_value());
  const HttpResponse no_purchase =
      api(*f.b, "POST", "/api/v1/purchases", token,
          R"({"product_id":"pass","idempotency_key":"order-2","receipt":"r-2"})");
  CHECK(no_purchase.status == 503);
  CHECK(f.b->get(target_of(playlist)).status == 200);  // playback with a valid ticket goes on

  REQUIRE(pg.restart());
  CHECK(wait_until(
      [&] {
        return api(*f.b, "POST", "/api/v1/auth/login", "",
                   R"({"login":"alice","password":"alice-password"})")
                   .status == 200;
      },
      15s, 100ms));
  // Each loop's connection comes back on its own: the next request on it reconnects.
  HttpResponse history;
  CHECK(wait_until(
      [&] {
        history = api(*f.b, "GET", "/api/v1/purchases", token);
        return history.status == 200;
      },
      15s, 100ms));
  REQUIRE(history.status == 200);
  rapidjson::Document doc;
  doc.Parse(history.body.data(), history.body.size());
  REQUIRE_MESSAGE((!doc.HasParseError() && doc.HasMember("purchases")), history.body);
  CHECK(doc["purchases"].GetArray().Size() ==
        1);  // order-1 once; order-2 failed while the database was down
}
