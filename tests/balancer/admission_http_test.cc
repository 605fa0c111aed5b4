// The HTTP face of admission as pure functions: the queue answer's status, Retry-After and JSON
// shape; the access check's answer to admission's decision; operator authorisation (key, loopback);
// the switch's ?state=; the /admin/status document.
#include "balancer/viewers/admission_http.h"

#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/event_loop.h"

namespace balancer {
namespace {

using namespace std::chrono_literals;

admission::TimePoint t(int seconds) {
  return admission::TimePoint(std::chrono::hours(1)) + std::chrono::seconds(seconds);
}

rapidjson::Document parse(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  REQUIRE_MESSAGE(!doc.HasParseError(), body);
  REQUIRE(doc.IsObject());
  return doc;
}

std::optional<std::string> header(const Reply& r, const std::string& name) {
  for (const auto& h : r.headers) {
    if (h.name == name) return h.value;
  }
  return std::nullopt;
}

AdmissionDecision queued(uint64_t ticket, uint64_t position, int wait_s, int retry_s) {
  AdmissionDecision d;
  d.kind = AdmissionDecision::Kind::queued;
  d.ticket = ticket;
  d.position = position;
  d.estimated_wait = std::chrono::seconds(wait_s);
  d.retry_after = std::chrono::seconds(retry_s);
  return d;
}

TEST_CASE("a queued viewer gets 503, Retry-After and the error shape plus the queue fields") {
  const Reply r = queued_reply(queued(17, 3, 45, 10));
  CHECK(r.status == 503);
  CHECK(header(r, "Retry-After") == "10");
  const auto doc = parse(r.body);
  CHECK(std::string(doc["error"]["code"].GetString()) == "queued");
  CHECK(std::string(doc["error"]["message"].GetString()).find("number 3") != std::string::npos);
  const auto& q = doc["queue"];
  CHECK(q["ticket"].GetUint64() == 17);
  CHECK(q["position"].GetUint64() == 3);
  CHECK(q["estimated_wait_s"].GetInt64() == 45);
  CHECK(q["retry_after_s"].GetInt64() == 10);
  CHECK(doc.MemberCount() == 2);
  CHECK(q.MemberCount() == 4);

  // Retry-After is never 0, even for a decision that would say so.
  const Reply soon = queued_reply(queued(1, 1, 0, 0));
  CHECK(header(soon, "Retry-After") == "1");
  CHECK(parse(soon.body)["queue"]["retry_after_s"].GetInt64() == 1);

  // Before slots have freed often enough to measure, the wait is unknown: null, not a guess.
  AdmissionDecision unknown = queued(2, 5, 0, 10);
  unknown.estimated_wait.reset();
  const Reply first = queued_reply(unknown);
  CHECK(header(first, "Retry-After") == "10");
  const auto first_doc = parse(first.body);
  CHECK(first_doc["queue"]["estimated_wait_s"].IsNull());
  CHECK(first_doc["queue"]["position"].GetUint64() == 5);
}

TEST_CASE("the access check answers granted, queued (the playlist's answer) or bad_viewer") {
  AdmissionDecision admitted;
  admitted.kind = AdmissionDecision::Kind::admitted;
  Reply r = access_reply(admitted, "demo");
  CHECK(r.status == 200);
  auto doc = parse(r.body);
  CHECK(std::string(doc["access"].GetString()) == "granted");
  CHECK(std::string(doc["channel"].GetString()) == "demo");
  CHECK_FALSE(header(r, "Retry-After").has_value());

  r = access_reply(queued(4, 2, 30, 10), "demo");
  CHECK(r.status == 503);
  CHECK(r.body == queued_reply(queued(4, 2, 30, 10)).body);  // the playlist's answer, exactly
  CHECK(header(r, "Retry-After") == "10");

  r = access_reply(AdmissionDecision{}, "demo");
  CHECK(r.status == 400);
  CHECK(std::string(parse(r.body)["error"]["code"].GetString()) == "bad_viewer");
}

TEST_CASE("operator access: the right key anywhere, loopback without a key when allowed") {
  const std::string key = "operator-key-0123456789";
  const OperatorPolicy allow{key, true};
  const OperatorPolicy deny{key, false};

  auto ok = authorize_operator(allow, key, "203.0.113.9");
  CHECK(ok.allowed);
  CHECK(ok.via == "operator key");
  ok = authorize_operator(allow, std::nullopt, "127.0.0.1");
  CHECK(ok.allowed);
  CHECK(ok.via == "loopback");
  CHECK(authorize_operator(allow, std::nullopt, "::1").allowed);
  CHECK(authorize_operator(allow, std::nullopt, "::ffff:127.0.0.2").allowed);
  CHECK(authorize_operator(deny, key, "127.0.0.1").allowed);

  auto no = authorize_operator(allow, std::nullopt, "10.0.0.1");
  CHECK_FALSE(no.allowed);
  CHECK(no.denial.status == 401);
  CHECK(no.code == "operator_key_required");
  CHECK(std::string(parse(no.denial.body)["error"]["code"].GetString()) == "operator_key_required");
  no = authorize_operator(deny, std::nullopt, "127.0.0.1");
  CHECK(no.denial.status == 401);
  // A wrong key is refused even from loopback: the caller meant to use a key.
  for (const std::string& wrong :
       {std::string("operator-key-0123456788"), std::string(""), key + "x", key.substr(0, 5)}) {
    no = authorize_operator(allow, wrong, "127.0.0.1");
    CHECK_FALSE(no.allowed);
    CHECK(no.denial.status == 403);
    CHECK(std::string(parse(no.denial.body)["error"]["code"].GetString()) ==
          "operator_key_invalid");
    CHECK(no.denial.body.find(key) == std::string::npos);
  }
  // No key configured: keys are never accepted, loopback still is when allowed.
  CHECK(authorize_operator({"", true}, "", "10.0.0.1").denial.status == 403);
  CHECK(authorize_operator({"", true}, std::nullopt, "127.0.0.1").allowed);
  CHECK_FALSE(authorize_operator({"", false}, std::nullopt, "127.0.0.1").allowed);

  CHECK(is_loopback_address("127.255.0.1"));
  CHECK_FALSE(is_loopback_address("128.0.0.1"));
  CHECK_FALSE(is_loopback_address("::2"));
  CHECK_FALSE(is_loopback_address("localhost"));
  CHECK_FALSE(is_loopback_address(""));
}

TEST_CASE("the switch's state parameter: absent toggles, on/off set, anything else is refused") {
  CHECK_FALSE(parse_switch_state("").present);
  CHECK(parse_switch_state("").valid);
  CHECK_FALSE(parse_switch_state("key=abc").present);
  auto s = parse_switch_state("state=on");
  CHECK((s.present && s.valid && s.on));
  s = parse_switch_state("key=abc&state=off");
  CHECK((s.present && s.valid && !s.on));
  for (const char* bad : {"state=ON", "state=", "state", "state=1", "state=on&state=off",
                          "state=maybe", "state=%6Fn"}) {
    INFO(bad);
    CHECK_FALSE(parse_switch_state(bad).valid);
  }
  const Reply r = switch_reply(true, false);
  CHECK(r.status == 200);
  const auto doc = parse(r.body);
  CHECK(doc["emulation"].GetBool());
  CHECK_FALSE(doc["changed"].GetBool());
}

TEST_CASE("/admin/status: viewers by channel and cache, queue, traffic, limits, counters") {
  AdmissionLimits limits;
  limits.max_streams = 2;
  limits.max_traffic_mbps = 100;
  limits.idle_timeout = 90500ms;
  std::unique_ptr<Admission> admission = admission::make_local_admission(limits);
  core::EventLoop loop(0);  // in-process admission answers inline, on the caller's thread
  std::vector<AdmissionDecision> decided;
  auto keep = [&](const AdmissionDecision& d) { decided.push_back(d); };
  admission->request(loop, "t:a", {"demo", "venue-a", 2'000'000}, {}, t(0), keep);
  admission->request(loop, "v:b", {"news", "", 500'000}, {}, t(0), keep);
  admission->request(loop, "v:c", {"demo", "venue-a", 0}, {}, t(1), keep);
  REQUIRE(decided.size() == 3);
  REQUIRE(decided[0].admitted());
  REQUIRE(decided[1].admitted());
  REQUIRE(decided[2].kind == AdmissionDecision::Kind::queued);
  admission->set_measured_traffic_mbps(1.0, t(2));
  admission->switch_emulation(loop, true, t(2), [](std::optional<EmulationSwitch>) {});

  const Reply reply = admin_status_reply(admission->status(t(4)));
  CHECK(reply.status == 200);
  const auto doc = parse(reply.body);
  CHECK(doc["emulation"].GetBool());
  const auto& v = doc["viewers"];
  CHECK(v["active"].GetUint64() == 2);
  CHECK(v["origin"].GetUint64() == 1);
  REQUIRE(v["channels"].Size() == 2);
  CHECK(std::string(v["channels"][0]["id"].GetString()) == "demo");
  CHECK(v["channels"][0]["viewers"].GetUint64() == 1);
  CHECK(v["channels"][0]["declared_mbps"].GetDouble() == doctest::Approx(2));
  REQUIRE(v["caches"].Size() == 1);
  CHECK(std::string(v["caches"][0]["id"].GetString()) == "venue-a");
  const auto& q = doc["queue"];
  CHECK(q["length"].GetUint64() == 1);
  CHECK(q["reserved_slots"].GetUint64() == 0);
  CHECK(q["head_wait_s"].GetInt64() == 3);
  CHECK(q["next_wait_s"].IsNull());  // no slot has freed: unknown
  CHECK(q["slot_free_rate_per_s"].IsNull());
  const auto& tr = doc["traffic"];
  CHECK(tr["declared_mbps"].GetDouble() == doctest::Approx(2.5));
  CHECK(tr["correction"].GetDouble() == doctest::Approx(0.5));
  CHECK(tr["estimate_mbps"].GetDouble() == doctest::Approx(1.25));
  CHECK(tr["measured_cache_mbps"].GetDouble() == doctest::Approx(1));
  const auto& l = doc["limits"];
  CHECK(l["max_streams"].GetUint64() == 2);
  CHECK(l["max_traffic_mbps"].GetDouble() == doctest::Approx(100));
  CHECK(l["idle_timeout_s"].GetDouble() == doctest::Approx(90.5));
  CHECK(l["retry_after_s"].GetDouble() == doctest::Approx(10));
  const auto& c = doc["counters"];
  CHECK(c["admitted"].GetUint64() == 2);
  CHECK(c["tickets_issued"].GetUint64() == 1);
  for (const char* k : {"admitted_from_queue", "slots_expired", "tickets_expired",
                        "reservations_lapsed", "released"}) {
    CHECK(c.HasMember(k));
  }

  admission->set_measured_traffic_mbps(std::nullopt, t(5));
  CHECK(parse(admission_status_json(admission->status(t(5))))["traffic"]["measured_cache_mbps"]
            .IsNull());
}

}  // namespace
}  // namespace balancer
