// The balancer's three config files: the example config loads; every bad value or
// unknown key is refused naming the file and the key.
#include <doctest/doctest.h>

#include <string>

#include "balancer/operator/balancer_config.h"

namespace balancer {
namespace {

const char* kMain = R"({
  "listen": {"host": "127.0.0.1", "port": 0},
  "channels_file": "channels.json",
  "caches_file": "caches.json",
  "origins": {"demo": {"url": "http://127.0.0.1:8080/files/"}},
  "signing": {"keys": ["signing-key-0000000001"]},
  "playback": {"ticket_keys": ["ticket-key-00000000001"], "allow_anonymous": true}
})";

core::ConfigDocument doc(const std::string& name, const std::string& text,
                         const std::vector<std::string>& overrides = {}) {
  auto d = core::ConfigDocument::parse(name, text, overrides);
  REQUIRE_MESSAGE(d.ok(), (d.ok() ? "" : d.error().message));
  return std::move(d).value();
}

BalancerConfig main_ok(const std::vector<std::string>& overrides = {}) {
  auto c = read_main_config(doc("/etc/balancer/main.json", kMain, overrides));
  REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
  return std::move(c).value();
}

std::string main_error(const std::vector<std::string>& overrides) {
  auto c = read_main_config(doc("main.json", kMain, overrides));
  REQUIRE_FALSE(c.ok());
  return c.error().message;
}

std::string channels_error(const std::string& text) {
  BalancerConfig c = main_ok();
  auto s = read_channels(doc("channels.json", text), c);
  REQUIRE_FALSE(s.ok());
  return s.error().message;
}

std::string caches_error(const std::string& text) {
  BalancerConfig c = main_ok();
  auto s = read_caches(doc("caches.json", text), c);
  REQUIRE_FALSE(s.ok());
  return s.error().message;
}

bool has(const std::string& text, const std::string& part) {
  INFO(text);
  return text.find(part) != std::string::npos;
}

TEST_CASE("a minimal main config loads with defaults and resolves the list files beside it") {
  BalancerConfig c = main_ok();
  CHECK(c.channels_file == "/etc/balancer/channels.json");
  CHECK(c.caches_file == "/etc/balancer/caches.json");
  CHECK(c.origins.at("demo").url == "http://127.0.0.1:8080/files");  // trailing slash trimmed
  CHECK(c.allow_anonymous);
  CHECK(c.playlists.live_max_lag == std::chrono::milliseconds(500));
  CHECK(c.playlists.live_refresh < c.playlists.live_max_lag);
  CHECK(c.health.down_after == 2);
  CHECK(c.public_url.empty());
}

TEST_CASE("bad values in the main file name the file and the key") {
  CHECK(has(main_error({"listen.port=70000"}), "main.json: key 'listen.port'"));
  CHECK(has(main_error({"surprise=1"}), "key 'surprise': unknown key"));
  CHECK(has(main_error({"playlists.surprise=1"}), "key 'playlists.surprise': unknown key"));
  CHECK(has(main_error({"origins.demo.url=ftp://x"}), "key 'origins.demo.url'"));
  CHECK(has(main_error({"signing.keys=[\"short\"]"}), "key 'signing.keys'"));
  CHECK(has(main_error({"signing.keys=[]"}), "key 'signing.keys'"));
  CHECK(has(main_error({"playback.ticket_keys=[]"}), "key 'playback.ticket_keys'"));
  CHECK(has(main_error({"playback.allow_anonymous=\"yes\""}), "key 'playback.allow_anonymous'"));
  CHECK(has(main_error({"playlists.live_max_lag_ms=2000"}), "key 'playlists.live_max_lag_ms'"));
  CHECK(has(main_error({"playlists.live_refresh_ms=500"}), "key 'playlists.live_refresh_ms'"));
  CHECK(has(main_error({"health.timeout_ms=5000"}), "key 'health.timeout_ms'"));
  CHECK(has(main_error({"log.level=loud"}), "key 'log.level'"));
  CHECK(has(main_error({"public_url=balancer.example"}), "key 'public_url'"));
  CHECK(has(main_error({"origins={}"}), "key 'origins'"));
  CHECK(has(main_error({"operator.key=short"}), "key 'operator.key'"));
}

TEST_CASE(
    "errors in every section of the main file are all listed, in section order, word for word") {
  const std::string text = main_error({
      "public_url=balancer.example",
      "origins.demo.url=ftp://x",
      "signing.keys=[\"short\"]",
      "playback.ticket_keys=[]",
      "playlists.live_refresh_ms=500",
      "key_delivery.ttl_s=-1",
      "health.timeout_ms=5000",
      "upstream.connect_timeout_ms=0",
      "limits.max_streams=-1",
      "admission.backend=cluster",
      "operator.key=short",
      "log.level=loud",
      "steering.ttl_s=0",
      "web.dir=no-such-directory",
      "surprise=1",
  });
  CHECK(text ==
        "main.json: key 'public_url': must be empty or a URL starting with http:// or https://\n"
        "main.json: key 'origins.demo.url': must start with http:// or https://\n"
        "main.json: key 'signing.keys': every key must be at least 16 characters\n"
        "main.json: key 'playback.ticket_keys': at least one key is required\n"
        "main.json: key 'playlists.live_refresh_ms': must be below live_max_lag_ms, or viewers "
        "would wait for every refresh\n"
        "main.json: key 'key_delivery.ttl_s': expected a number from 0 to 86400, got -1\n"
        "main.json: key 'health.timeout_ms': must not exceed interval_ms\n"
        "main.json: key 'upstream.connect_timeout_ms': expected an integer from 1 to 60000, got 0\n"
        "main.json: key 'limits.max_streams': expected an integer from 0 to 100000000, got -1\n"
        "main.json: key 'admission.backend': must be \"local\" (this balancer alone) or \"redis\" "
        "(several balancers share admission)\n"
        "main.json: key 'operator.key': must be empty or at least 16 characters\n"
        "main.json: key 'log.level': expected debug, info, warn or error\n"
        "main.json: key 'steering.ttl_s': expected an integer from 1 to 300, got 0\n"
        "main.json: key 'web.dir': no-such-directory is not a directory\n"
        "main.json: key 'surprise': unknown key");
}

TEST_CASE("admission limits and queue timings: defaults, values, and errors naming the key") {
  using namespace std::chrono_literals;
  BalancerConfig c = main_ok();
  CHECK(c.admission.max_streams == 0);
  CHECK(c.admission.max_traffic_mbps == 0);
  CHECK(c.admission.idle_timeout == 30s);
  CHECK(c.admission.ticket_grace == 30s);
  CHECK(c.admission.head_reservation == 15s);
  CHECK(c.admission.retry_after == 10s);

  c = main_ok({"limits.max_streams=5000", "limits.max_traffic_mbps=2500.5",
               "limits.idle_timeout_s=1.5", "queue.ticket_grace_s=20",
               "queue.head_reservation_s=12", "queue.retry_after_s=4"});
  CHECK(c.admission.max_streams == 5000);
  CHECK(c.admission.max_traffic_mbps == doctest::Approx(2500.5));
  CHECK(c.admission.idle_timeout == 1500ms);
  CHECK(c.admission.ticket_grace == 20s);
  CHECK(c.admission.head_reservation == 12s);
  CHECK(c.admission.retry_after == 4s);

  CHECK(has(main_error({"limits.max_streams=-1"}), "main.json: key 'limits.max_streams'"));
  CHECK(has(main_error({"limits.max_traffic_mbps=\"lots\""}), "key 'limits.max_traffic_mbps'"));
  CHECK(has(main_error({"limits.idle_timeout_s=0"}),
            "main.json: key 'limits.idle_timeout_s': must be > 0"));
  CHECK(has(main_error({"queue.retry_after_s=0.5"}), "key 'queue.retry_after_s': must be >= 1"));
  CHECK(has(main_error({"queue.retry_after_s=40", "queue.head_reservation_s=40"}),
            "key 'queue.ticket_grace_s': must be >= queue.retry_after_s"));
  CHECK(has(main_error({"queue.head_reservation_s=5"}), "key 'queue.head_reservation_s'"));
  CHECK(has(main_error({"limits.surprise=1"}), "key 'limits.surprise': unknown key"));
  CHECK(has(main_error({"queue.length=1"}), "key 'queue.length': unknown key"));
}

TEST_CASE("admission.backend and admission.redis.*: defaults, values, and errors naming the key") {
  using namespace std::chrono_literals;
  struct Case {
    std::vector<std::string> settings;
    std::string backend, host;
    int port;
    std::string prefix;
    std::chrono::milliseconds timeout, heartbeat;
    std::string password;
  };
  const Case cases[] = {
      {{}, "local", "127.0.0.1", 6379, "balancer", 500ms, 1000ms, ""},
      {{"admission.backend=redis", "admission.redis.host=redis.internal",
        "admission.redis.port=6380", "admission.redis.prefix=stadium",
        "admission.redis.timeout_ms=250", "admission.redis.heartbeat_ms=2000",
        "admission.redis.password=secret-redis-password"},
       "redis",
       "redis.internal",
       6380,
       "stadium",
       250ms,
       2000ms,
       "secret-redis-password"},
  };
  for (const Case& expected : cases) {
    CAPTURE(expected.backend);
    BalancerConfig c = main_ok(expected.settings);
    CHECK(c.admission_backend == expected.backend);
    CHECK(c.admission_redis.host == expected.host);
    CHECK(c.admission_redis.port == expected.port);
    CHECK(c.admission_redis.prefix == expected.prefix);
    CHECK(c.admission_redis.timeout == expected.timeout);
    CHECK(c.admission_redis.heartbeat_interval == expected.heartbeat);
    if (!expected.password.empty()) CHECK(c.admission_redis.password == expected.password);
  }

  CHECK(has(main_error({"admission.backend=etcd"}),
            "main.json: key 'admission.backend': must be \"local\""));
  CHECK(has(main_error({"admission.redis.port=0"}), "key 'admission.redis.port'"));
  CHECK(has(main_error({"admission.redis.prefix=\"a{b}\""}), "key 'admission.redis.prefix'"));
  CHECK(has(main_error({"admission.redis.timeout_ms=1"}), "key 'admission.redis.timeout_ms'"));
  CHECK(has(main_error({"admission.redis.db=1"}), "key 'admission.redis.db': unknown key"));
  CHECK(has(main_error({"admission.backend=redis", "limits.idle_timeout_s=1",
                        "admission.redis.heartbeat_ms=1000"}),
            "key 'admission.redis.heartbeat_ms': must be at most half of limits.idle_timeout_s"));
}

TEST_CASE("per-address bounds and the entry bound: defaults, values, and errors naming the key") {
  BalancerConfig c = main_ok();
  CHECK(c.admission.max_anonymous_per_address == 32);
  CHECK(c.admission.max_tickets_per_address == 64);
  CHECK(c.admission.max_entries == 1'000'000);
  CHECK(c.per_address_exempt.empty());
  c = main_ok({"limits.max_anonymous_per_address=0", "queue.max_tickets_per_address=3",
               "limits.max_entries=50",
               R"(limits.per_address_exempt=["10.0.0.0/8","2001:db8::/32"])"});
  CHECK(c.admission.max_anonymous_per_address == 0);
  CHECK(c.admission.max_tickets_per_address == 3);
  CHECK(c.admission.max_entries == 50);
  REQUIRE(c.per_address_exempt.size() == 2);
  CHECK(c.per_address_exempt[0].contains(*core::IpAddress::parse("10.1.2.3")));
  CHECK(has(main_error({R"(limits.per_address_exempt=["10.0.0.1/8"])"}),
            "key 'limits.per_address_exempt'"));
  CHECK(has(main_error({"limits.max_streams=100", "limits.max_entries=10"}),
            "key 'limits.max_entries'"));
  CHECK(
      has(main_error({"queue.max_tickets_per_address=-1"}), "key 'queue.max_tickets_per_address'"));
}

TEST_CASE("limits.max_streams_per_account: default 4, 0 = unlimited, errors naming the key") {
  CHECK(main_ok().admission.max_streams_per_account == 4);
  CHECK(main_ok({"limits.max_streams_per_account=1"}).admission.max_streams_per_account == 1);
  CHECK(main_ok({"limits.max_streams_per_account=0"}).admission.max_streams_per_account == 0);
  CHECK(has(main_error({"limits.max_streams_per_account=-1"}),
            "key 'limits.max_streams_per_account'"));
  CHECK(has(main_error({"limits.max_streams_per_account=\"two\""}),
            "key 'limits.max_streams_per_account'"));
}

TEST_CASE(
    "playlist cost bounds: max_segments and max_unsent_bytes defaults, values, and errors naming "
    "the key") {
  BalancerConfig c = main_ok();
  CHECK(c.playlists.max_segments == 6000);
  CHECK(c.playlists.max_unsent_bytes == size_t{256} << 20);
  c = main_ok({"playlists.max_segments=16", "playlists.max_unsent_bytes=65536"});
  CHECK(c.playlists.max_segments == 16);
  CHECK(c.playlists.max_unsent_bytes == 65536);
  CHECK(has(main_error({"playlists.max_segments=15"}), "key 'playlists.max_segments'"));
  CHECK(has(main_error({"playlists.max_unsent_bytes=0"}), "key 'playlists.max_unsent_bytes'"));
}

TEST_CASE("channels: ids, origins, sources and free/paid are validated") {
  BalancerConfig c = main_ok();
  auto s = read_channels(doc("channels.json", R"({"channels":[
      {"id":"demo","title":"Demo","origin":"demo","source":"/live/master.m3u8","free":true},
      {"id":"premium","origin":"demo","source":"/live/master.m3u8?x=1","product":"gold"}]})"),
                         c);
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
  REQUIRE(c.channels.size() == 2);
  CHECK(c.channels[0].free);
  CHECK(c.channels[1].product == "gold");
  CHECK(c.channels[1].title == "premium");

  CHECK(has(
      channels_error(R"({"channels":[{"id":"a","origin":"nope","source":"/m.m3u8","free":true}]})"),
      "channels.json: key 'channels[0].origin': unknown origin 'nope'"));
  CHECK(has(channels_error(
                R"({"channels":[{"id":"a b","origin":"demo","source":"/m.m3u8","free":true}]})"),
            "key 'channels[0].id'"));
  CHECK(
      has(channels_error(R"({"channels":[{"id":"a","origin":"demo","source":"/m.m3u8","free":true},
                                            {"id":"a","origin":"demo","source":"/n.m3u8","free":true}]})"),
          "key 'channels[1].id': duplicate"));
  CHECK(has(
      channels_error(R"({"channels":[{"id":"a","origin":"demo","source":"m.m3u8","free":true}]})"),
      "key 'channels[0].source'"));
  CHECK(has(channels_error(
                R"({"channels":[{"id":"a","origin":"demo","source":"/x/../m.m3u8","free":true}]})"),
            "key 'channels[0].source'"));
  CHECK(has(
      channels_error(
          R"({"channels":[{"id":"a","origin":"demo","source":"http://x/m.m3u8","free":true}]})"),
      "key 'channels[0].source'"));
  CHECK(has(channels_error(R"({"channels":[{"id":"a","origin":"demo","source":"/m.m3u8"}]})"),
            "key 'channels[0].free'"));
  CHECK(has(
      channels_error(
          R"({"channels":[{"id":"a","origin":"demo","source":"/m.m3u8","free":true,"product":"p"}]})"),
      "key 'channels[0].product'"));
  CHECK(has(
      channels_error(
          R"({"channels":[{"id":"a","origin":"demo","source":"/m.m3u8","free":true,"colour":1}]})"),
      "key 'channels[0].colour': unknown key"));
  CHECK(has(channels_error(R"({"channel":[]})"), "key 'channels'"));
}

TEST_CASE(
    "channels: kind (auto, live, vod) and the operator's finished marker; live_end_confirm_s") {
  BalancerConfig c = main_ok();
  CHECK(c.playlists.live_end_confirm == std::chrono::seconds(300));
  auto s = read_channels(doc("channels.json", R"({"channels":[
      {"id":"a","origin":"demo","source":"/a.m3u8","free":true},
      {"id":"b","origin":"demo","source":"/b.m3u8","free":true,"kind":"live","finished":true},
      {"id":"c","origin":"demo","source":"/c.m3u8","free":true,"kind":"vod"}]})"),
                         c);
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
  CHECK(c.channels[0].kind == balancer::LiveMode::automatic);
  CHECK_FALSE(c.channels[0].finished);
  CHECK(c.channels[1].kind == balancer::LiveMode::live);
  CHECK(c.channels[1].finished);
  CHECK(c.channels[2].kind == balancer::LiveMode::vod);
  CHECK(has(
      channels_error(
          R"({"channels":[{"id":"a","origin":"demo","source":"/a.m3u8","free":true,"kind":"event"}]})"),
      "key 'channels[0].kind': must be \"auto\", \"live\" or \"vod\""));
  CHECK(has(main_error({"playlists.live_end_confirm_s=-1"}), "playlists.live_end_confirm_s"));
  CHECK(main_ok({"playlists.live_end_confirm_s=20"}).playlists.live_end_confirm ==
        std::chrono::seconds(20));
}

TEST_CASE("channels: sources in order of preference, the failover policy, and their errors") {
  BalancerConfig c = main_ok({"origins.backup.url=\"http://127.0.0.1:9090\""});
  auto s = read_channels(doc("channels.json", R"({"channels":[
      {"id":"two","free":true,"sources":[{"origin":"demo","source":"/a/master.m3u8"},
                                          {"origin":"backup","source":"/b/master.m3u8"}],
       "failover":{"stall_target_durations":2,"failback":"manual","failback_after_s":5,
                   "identical_timestamps":true}},
      {"id":"one","origin":"demo","source":"/live/index.m3u8","free":true}]})"),
                         c);
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
  REQUIRE(c.channels[0].sources.size() == 2);
  CHECK(c.channels[0].origin == "demo");  // the preferred source
  CHECK(c.channels[0].source == "/a/master.m3u8");
  CHECK(c.channels[0].sources[1] == ChannelSource{"backup", "/b/master.m3u8"});
  CHECK(c.channels[0].failover.stall_target_durations == 2);
  CHECK_FALSE(c.channels[0].failover.failback);
  CHECK(c.channels[0].failover.failback_after == std::chrono::seconds(5));
  CHECK(c.channels[0].failover.identical_timestamps);
  // The older pair is one source, with the default policy.
  REQUIRE(c.channels[1].sources.size() == 1);
  CHECK(c.channels[1].sources[0] == ChannelSource{"demo", "/live/index.m3u8"});
  CHECK(c.channels[1].failover == FailoverPolicy{});

  CHECK(has(channels_error(R"({"channels":[{"id":"a","free":true,"origin":"demo",
      "source":"/m.m3u8","sources":[{"origin":"demo","source":"/m.m3u8"}]}]})"),
            "key 'channels[0].sources': list the sources here or give \"origin\" and \"source\""));
  CHECK(has(channels_error(R"({"channels":[{"id":"a","free":true,"sources":[
      {"origin":"demo","source":"/m.m3u8"},{"origin":"nope","source":"/m.m3u8"}]}]})"),
            "key 'channels[0].sources[1].origin': unknown origin 'nope'"));
  CHECK(has(channels_error(R"({"channels":[{"id":"a","free":true,"sources":[
      {"origin":"demo","source":"/m.m3u8"},{"origin":"demo","source":"/m.m3u8"}]}]})"),
            "key 'channels[0].sources[1].source': the same playlist on the same origin is "
            "listed twice"));
  CHECK(has(channels_error(R"({"channels":[{"id":"a","free":true,"sources":[]}]})"),
            "key 'channels[0].sources': must list at least one source"));
  CHECK(has(channels_error(R"({"channels":[{"id":"a","free":true,"sources":[
      {"origin":"demo","source":"m.m3u8"}]}]})"),
            "key 'channels[0].sources[0].source'"));
  CHECK(has(channels_error(R"({"channels":[{"id":"a","free":true,"sources":[
      {"origin":"demo","source":"/m.m3u8","extra":1}]}]})"),
            "key 'channels[0].sources[0].extra': unknown key"));
  CHECK(has(channels_error(R"({"channels":[{"id":"a","free":true,"origin":"demo",
      "source":"/m.m3u8","failover":{"failback":"sometimes"}}]})"),
            "key 'channels[0].failover.failback'"));
  CHECK(has(channels_error(R"({"channels":[{"id":"a","free":true,"origin":"demo",
      "source":"/m.m3u8","failover":{"stall_target_durations":0.1}}]})"),
            "key 'channels[0].failover.stall_target_durations'"));
  std::string five = R"({"channels":[{"id":"a","free":true,"sources":[)";
  for (int i = 0; i < 5; ++i)
    five += std::string(i ? "," : "") + R"({"origin":"demo","source":"/m)" + std::to_string(i) +
            R"(.m3u8"})";
  CHECK(has(channels_error(five + "]}]}"), "key 'channels[0].sources': at most 4 sources"));
}

TEST_CASE("channels: target_latency_s is a number of seconds from 0 (origin's) to 600") {
  BalancerConfig c = main_ok();
  auto s = read_channels(doc("channels.json", R"({"channels":[
      {"id":"a","origin":"demo","source":"/a.m3u8","free":true},
      {"id":"b","origin":"demo","source":"/b.m3u8","free":true,"target_latency_s":2.5}]})"),
                         c);
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
  CHECK(c.channels[0].target_latency_s == 0);
  CHECK(c.channels[1].target_latency_s == 2.5);
  for (const char* value : {"-1", "601", "\"3\""}) {
    CAPTURE(value);
    CHECK(has(
        channels_error(
            std::string(
                R"({"channels":[{"id":"a","origin":"demo","source":"/a.m3u8","free":true,"target_latency_s":)") +
            value + "}]}"),
        "channels[0].target_latency_s"));
  }
}

TEST_CASE("caches: URLs, health URLs and networks are validated") {
  BalancerConfig c = main_ok();
  auto s = read_caches(doc("caches.json", R"({"caches":[
      {"id":"venue-a","site":"venue","url":"http://10.0.0.5:8081/","networks":["10.20.0.0/16","fd00::/8"]},
      {"id":"venue-b","site":"venue","url":"http://10.0.0.6:8081","health_url":"http://10.0.0.6:9000/hc"}]})"),
                       c);
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
  REQUIRE(c.caches.size() == 2);
  CHECK(c.caches[0].url == "http://10.0.0.5:8081");
  CHECK(c.caches[0].health_url == "http://10.0.0.5:8081/health");
  CHECK(c.caches[0].networks.size() == 2);
  CHECK(c.caches[1].health_url == "http://10.0.0.6:9000/hc");

  CHECK(has(caches_error(R"({"caches":[{"id":"a","url":"http://x","networks":["10.0.0.1/8"]}]})"),
            "caches.json: key 'caches[0].networks': '10.0.0.1/8'"));
  CHECK(has(caches_error(R"({"caches":[{"id":"a","url":"http://x","networks":["nope"]}]})"),
            "key 'caches[0].networks'"));
  CHECK(has(caches_error(R"({"caches":[{"id":"a","url":"x:1"}]})"), "key 'caches[0].url'"));
  CHECK(has(caches_error(R"({"caches":[{"id":"a","url":"http://x","health_url":"/health"}]})"),
            "key 'caches[0].health_url'"));
  CHECK(has(caches_error(R"({"caches":[{"id":"a","url":"http://x"},{"id":"a","url":"http://y"}]})"),
            "key 'caches[1].id': duplicate"));
  CHECK(has(caches_error(R"({"caches":[{"id":"a","url":"http://x","weight":3}]})"),
            "key 'caches[0].weight': unknown key"));
  CHECK(has(caches_error(R"({})"), "key 'caches'"));
}

TEST_CASE("the example configuration in conf/ loads, with its products and anonymous play off") {
  auto c = load_balancer_config(std::string(BALANCER_SOURCE_DIR) + "/conf/balancer.json", {});
  REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
  CHECK(c->channels.size() >= 1);
  CHECK(c->caches.size() >= 2);
  CHECK(c->api.products.size() >= 2);
  CHECK(c->api.products_file == std::string(BALANCER_SOURCE_DIR) + "/conf/products.json");
  CHECK_FALSE(c->allow_anonymous);
  CHECK_FALSE(c->api.demo_payments);
}

TEST_CASE("a paid channel must name a product that is on sale and unlocks it") {
  auto with_channels = [](const std::string& channels_text) {
    BalancerConfig c = main_ok();
    REQUIRE(read_channels(doc("channels.json", channels_text), c).ok());
    return c;
  };
  const std::string products = R"({"products":[
    {"id":"pass","kind":"channel","price":"1.00","currency":"EUR","unlocks":["premium"]},
    {"id":"vas","kind":"service","price":"1.00","currency":"EUR","unlocks":["premium"]}]})";
  BalancerConfig ok = with_channels(
      R"({"channels":[{"id":"premium","origin":"demo","source":"/m.m3u8","product":"pass"}]})");
  REQUIRE(read_products(doc("products.json", products), ok).ok());
  CHECK(ok.api.products.size() == 2);

  BalancerConfig unknown = with_channels(
      R"({"channels":[{"id":"premium","origin":"demo","source":"/m.m3u8","product":"gold"}]})");
  auto s = read_products(doc("products.json", products), unknown);
  REQUIRE_FALSE(s.ok());
  CHECK(has(s.error().message, "key 'channels[premium].product': no product 'gold'"));
  CHECK(unknown.api.products.empty());  // nothing applied

  BalancerConfig service = with_channels(
      R"({"channels":[{"id":"premium","origin":"demo","source":"/m.m3u8","product":"vas"}]})");
  auto t = read_products(doc("products.json", products), service);
  REQUIRE_FALSE(t.ok());
  CHECK(has(t.error().message, "products.json: key 'products[vas].unlocks'"));

  // A broken products file is refused by the loader, naming file and key.
  auto c = load_balancer_config(std::string(BALANCER_SOURCE_DIR) + "/conf/balancer.json",
                                {"api.products_file=channels.json"});
  REQUIRE_FALSE(c.ok());
  CHECK(has(c.error().message, "channels.json"));
  CHECK(has(c.error().message, "'products'"));
}

TEST_CASE("a missing list file is named") {
  auto c = load_balancer_config(std::string(BALANCER_SOURCE_DIR) + "/conf/balancer.json",
                                {"channels_file=does-not-exist.json"});
  REQUIRE_FALSE(c.ok());
  CHECK(has(c.error().message, "does-not-exist.json"));
}

TEST_CASE("prefetch: off without a key; key length, bounds and the channels' prefetch flag") {
  BalancerConfig c = main_ok();
  CHECK(c.prefetch.key.empty());
  CHECK(c.prefetch.max_per_s == 50);
  CHECK(c.prefetch.max_queue == 256);
  CHECK(c.prefetch.max_inflight == 8);
  BalancerConfig on =
      main_ok({"prefetch.key=\"prefetch-key-000000001\"", "prefetch.max_per_s=5",
               "prefetch.max_queue=10", "prefetch.max_inflight=2", "prefetch.timeout_ms=500"});
  CHECK(on.prefetch.key == "prefetch-key-000000001");
  CHECK(on.prefetch.max_per_s == 5);
  CHECK(on.prefetch.max_queue == 10);
  CHECK(on.prefetch.max_inflight == 2);
  CHECK(on.prefetch.timeout == std::chrono::milliseconds(500));
  CHECK(has(main_error({"prefetch.key=\"short\""}), "prefetch.key"));
  CHECK(has(main_error({"prefetch.max_queue=0"}), "prefetch.max_queue"));
  CHECK(has(main_error({"prefetch.retries=1"}), "prefetch.retries"));
  auto s = read_channels(doc("channels.json", R"({"channels":[
      {"id":"a","origin":"demo","source":"/a.m3u8","free":true},
      {"id":"b","origin":"demo","source":"/b.m3u8","free":true,"prefetch":false}]})"),
                         c);
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
  CHECK(c.channels[0].prefetch);
  CHECK_FALSE(c.channels[1].prefetch);
  CHECK(has(
      channels_error(
          R"({"channels":[{"id":"a","origin":"demo","source":"/a.m3u8","free":true,"prefetch":1}]})"),
      "channels[0].prefetch"));
}

}  // namespace
}  // namespace balancer
