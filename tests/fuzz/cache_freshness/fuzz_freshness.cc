// Fuzz target for the cache node's freshness rules: the input is the upstream's
// Cache-Control, Expires, Date and Age values, a path, a content type and a
// CDN-Cache-Control value (one per line); compute_freshness must never overflow (UBSan)
// and its deadlines must keep their order.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "cache_node/rules/freshness.h"
#include "cache_node/rules/http_semantics.h"
#include "cache_node/rules/targeted_cache_control.h"
#include "fuzz/fuzz_check.h"

namespace {

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (out.size() < 6) {
    size_t nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) return out;
    text.remove_prefix(nl + 1);
  }
  out.push_back(text);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cache_node;
  std::vector<std::string_view> f =
      lines(std::string_view(reinterpret_cast<const char*>(data), size));
  f.resize(7);
  UpstreamFreshness response;
  response.cache_control = f[0];
  if (!f[6].empty()) response.cdn_cache_control = f[6];
  if (!f[1].empty()) response.expires = f[1];
  if (!f[2].empty()) response.date = f[2];
  if (!f[3].empty()) response.age = f[3];
  const ObjectKind kind = classify_object(f[4], f[5]);
  const FreshnessDefaults defaults;
  const int64_t now_ms = 1767225600123;  // 2026-01-01, as the FakeClock starts
  const Freshness fresh = compute_freshness(response, kind, now_ms, defaults);
  const CacheDirectives d = effective_directives(response).directives;
  FUZZ_CHECK(fresh.storable == !(d.no_store || d.is_private));
  FUZZ_CHECK(fresh.vouched_ms <= now_ms);
  FUZZ_CHECK(fresh.fresh_until_ms >= fresh.vouched_ms);
  FUZZ_CHECK(fresh.stale_until_ms >= fresh.fresh_until_ms);
  FUZZ_CHECK(fresh.stale_until_ms - fresh.fresh_until_ms <= defaults.max_stale_if_error_s * 1000);
  if (d.no_cache)
    FUZZ_CHECK(fresh.fresh_until_ms == fresh.vouched_ms &&
               fresh.stale_until_ms == fresh.vouched_ms);
  for (auto value : {d.max_age, d.s_maxage, d.stale_if_error}) {
    if (value) FUZZ_CHECK(*value >= 0 && *value <= (int64_t{1} << 31));
  }
  if (auto targeted = parse_targeted_cache_control(f[6])) {
    for (auto value : {targeted->max_age, targeted->s_maxage, targeted->stale_if_error,
                       targeted->stale_while_revalidate}) {
      if (value) FUZZ_CHECK(*value >= 0 && *value <= (int64_t{1} << 31));
    }
  }
  (void)parse_http_date(f[1]);
  return 0;
}
