#include "http/server/operator_access.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <array>

#include "core/cidr.h"
#include "http/server/http_exchange.h"

namespace http {
namespace {

std::array<unsigned char, SHA256_DIGEST_LENGTH> digest(std::string_view text) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> out{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), out.data());
  return out;
}

}  // namespace

bool same_secret(std::string_view presented, std::string_view configured) {
  // Fixed-size digests are compared, so the lengths do not show either.
  const auto a = digest(presented);
  const auto b = digest(configured);
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool is_loopback_address(std::string_view ip) {
  const auto address = core::IpAddress::parse(ip);
  if (!address) return false;
  // IPv4 is held IPv4-mapped, so 127.0.0.0/8 also matches ::ffff:127.x.y.z.
  return core::Cidr::parse("127.0.0.0/8")->contains(*address) ||
         core::Cidr::parse("::1")->contains(*address);
}

std::optional<std::string> presented_operator_key(const HttpExchange& ex) {
  std::optional<std::string> key = ex.header("X-Operator-Key");
  if (!key) key = ex.query_param("key");
  return key;
}

OperatorVerdict check_operator(const OperatorPolicy& policy,
                               const std::optional<std::string>& presented_key,
                               std::string_view remote_ip) {
  OperatorVerdict out;
  if (presented_key) {
    if (!policy.configured_key.empty() && same_secret(*presented_key, policy.configured_key)) {
      out.allowed = true;
      out.via = "operator key";
      return out;
    }
    out.status = 403;
    out.code = "operator_key_invalid";
    out.message = policy.configured_key.empty()
                      ? "Operator keys are disabled on this server (operator.key is empty)."
                      : "The operator key is not valid.";
    return out;
  }
  if (policy.allow_loopback && is_loopback_address(remote_ip)) {
    out.allowed = true;
    out.via = "loopback";
    return out;
  }
  out.status = 401;
  out.code = "operator_key_required";
  out.message = "Pass the operator key in the X-Operator-Key header (or key=...).";
  return out;
}

void read_operator_section(core::ConfigReader& root, std::string& key, bool& allow_loopback) {
  auto section = root.object("operator");
  key = section.string("key", "");
  if (!key.empty() && key.size() < 16)
    section.fail("key", "must be empty or at least 16 characters");
  allow_loopback = section.boolean("allow_loopback", true);
  section.finish();
}

}  // namespace http
