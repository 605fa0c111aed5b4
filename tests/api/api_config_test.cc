// The "api" config section: defaults, every key read, the Argon2id floor of
// OWASP's minimum (m = 19456 KiB, t = 2; lower only with kdf_allow_weak_for_tests,
// never below 64 KiB and 1 pass), unknown keys and wrong types named by key.
#include <doctest/doctest.h>

#include "api/api.h"

using namespace api;

namespace {

core::Result<ApiConfig> read(const std::string& api_json) {
  auto d = core::ConfigDocument::parse("main.json", "{\"api\":" + api_json + "}", {});
  REQUIRE(d.ok());
  core::ConfigReader root(*d);
  auto section = root.object("api");
  ApiConfig c;
  read_api_section(section, c);
  root.finish();
  if (!root.ok()) return core::Error{"bad_config", root.error_text()};
  return c;
}

std::string error_of(const std::string& api_json) {
  auto c = read(api_json);
  REQUIRE_FALSE(c.ok());
  return c.error().message;
}

}  // namespace

TEST_CASE("an empty api section gives the production defaults") {
  auto c = read("{}");
  REQUIRE(c.ok());
  CHECK(c->data_dir.empty());
  CHECK(c->kdf == Argon2Params{19456, 2, 1});
  CHECK(c->kdf_threads == 0);
  CHECK(c->token_lifetime == std::chrono::seconds(7 * 86400));
  CHECK(c->session_max_lifetime == std::chrono::seconds(90 * 86400));
  CHECK(c->login.per_address == 20);
  CHECK(c->login.per_login == 5);
  CHECK(c->login.per_address_login == 5);
  CHECK(c->login.max_delay == std::chrono::milliseconds(2000));
  CHECK(c->kdf_queue == 64);
  CHECK(c->kdf_queue_per_address == 4);
  CHECK(c->max_body_bytes == 16384);
  CHECK(c->max_json_depth == 16);
  CHECK(c->ticket_lifetime == std::chrono::seconds(4 * 3600));
  CHECK(c->products_file.empty());
  CHECK_FALSE(c->demo_payments);
}

TEST_CASE("every key is read") {
  auto c =
      read(R"({"data_dir":"/var/lib/balancer/api","token_lifetime_s":60,"kdf_iterations":700000,
                   "session_max_lifetime_s":3600,"kdf_memory_kib":65536,"kdf_passes":3,"kdf_threads":4,
                   "kdf_queue":8,"kdf_queue_per_address":2,"max_body_bytes":1024,"max_json_depth":4,
                   "ticket_lifetime_s":600,
                   "products_file":"products.json","demo_payments":true,
                   "login_limits":{"per_address":7,"per_address_login":3,"per_login":2,"max_delay_ms":500,
                                   "window_s":30,"max_tracked":500}})");
  REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
  CHECK(c->data_dir == "/var/lib/balancer/api");
  CHECK(c->token_lifetime.count() == 60);
  CHECK(c->session_max_lifetime.count() == 3600);
  CHECK(c->kdf == Argon2Params{65536, 3, 1});
  CHECK(c->kdf_threads == 4);
  CHECK(c->kdf_queue == 8);
  CHECK(c->kdf_queue_per_address == 2);
  CHECK(c->max_body_bytes == 1024);
  CHECK(c->max_json_depth == 4);
  CHECK(c->login ==
        LoginLimits{7, 3, 2, std::chrono::milliseconds(500), std::chrono::seconds(30), 500});
  CHECK(c->ticket_lifetime.count() == 600);
  CHECK(c->products_file == "products.json");
  CHECK(c->demo_payments);
}

TEST_CASE(
    "Argon2id below OWASP's minimum needs kdf_allow_weak_for_tests, and never below 64 KiB and 1 "
    "pass") {
  CHECK(error_of(R"({"kdf_memory_kib":19455})").find("key 'api.kdf_memory_kib'") !=
        std::string::npos);
  CHECK(error_of(R"({"kdf_passes":1})").find("key 'api.kdf_passes'") != std::string::npos);
  auto weak = read(R"({"kdf_memory_kib":64,"kdf_passes":1,"kdf_allow_weak_for_tests":true})");
  REQUIRE(weak.ok());
  CHECK(weak->kdf == Argon2Params{64, 1, 1});
  CHECK(error_of(R"({"kdf_memory_kib":63,"kdf_allow_weak_for_tests":true})")
            .find("api.kdf_memory_kib") != std::string::npos);
  CHECK(error_of(R"({"kdf_passes":0,"kdf_allow_weak_for_tests":true})").find("api.kdf_passes") !=
        std::string::npos);
  CHECK(error_of(R"({"kdf_memory_kib":2097152})").find("api.kdf_memory_kib") !=
        std::string::npos);  // above 1 GiB
  CHECK(error_of(R"({"kdf_threads":-1})").find("api.kdf_threads") != std::string::npos);
  CHECK(error_of(R"({"session_max_lifetime_s":10})").find("api.session_max_lifetime_s") !=
        std::string::npos);
  // PBKDF2's count from before Argon2id: older files still load; it changes nothing.
  auto old_file = read(R"({"kdf_iterations":600000})");
  REQUIRE(old_file.ok());
  CHECK(old_file->kdf == Argon2Params{});
}

TEST_CASE("unknown keys and wrong types are refused naming the key") {
  CHECK(error_of(R"({"data_dri":"x"})").find("api.data_dri") != std::string::npos);
  CHECK(error_of(R"({"token_lifetime_s":"long"})").find("api.token_lifetime_s") !=
        std::string::npos);
  CHECK(error_of(R"({"login_limits":{"per_login":0}})").find("api.login_limits.per_login") !=
        std::string::npos);
  CHECK(error_of(R"({"login_limits":{"burst":3}})").find("api.login_limits.burst") !=
        std::string::npos);
  CHECK(error_of(R"({"ticket_lifetime_s":10})").find("api.ticket_lifetime_s") != std::string::npos);
  CHECK(error_of(R"({"demo_payments":"yes"})").find("api.demo_payments") != std::string::npos);
}

TEST_CASE("api.store and api.postgresql.*: defaults, values, and errors naming the key") {
  auto d = read("{}");
  REQUIRE(d.ok());
  CHECK(d->store == "lmdb");
  CHECK(d->postgresql.host == "127.0.0.1");
  CHECK(d->postgresql.port == 5432);
  CHECK(d->postgresql.dbname == "balancer");
  auto c = read(
      R"({"store":"postgresql","postgresql":{"host":"db.internal","port":6432,"dbname":"fleet",)"
      R"("user":"app","password":"secret","timeout_ms":1500}})");
  REQUIRE(c.ok());
  CHECK(c->store == "postgresql");
  CHECK(c->postgresql.host == "db.internal");
  CHECK(c->postgresql.port == 6432);
  CHECK(c->postgresql.dbname == "fleet");
  CHECK(c->postgresql.user == "app");
  CHECK(c->postgresql.password == "secret");
  CHECK(c->postgresql.timeout == std::chrono::milliseconds(1500));
  CHECK(error_of(R"({"store":"mysql"})").find("api.store") != std::string::npos);
  CHECK(error_of(R"({"postgresql":{"port":0}})").find("api.postgresql.port") != std::string::npos);
  CHECK(error_of(R"({"postgresql":{"dbname":""}})").find("api.postgresql.dbname") !=
        std::string::npos);
  CHECK(error_of(R"({"postgresql":{"sslmode":"require"}})").find("api.postgresql.sslmode") !=
        std::string::npos);
}
