#include "cache_node/rules/query_policy.h"

#include <algorithm>

#include "cache_node/rules/freshness.h"

namespace cache_node {

std::string kept_query(std::string_view query, const QueryPolicy& policy) {
  std::string out;
  if (policy.mode == QueryPolicy::Mode::ignore && query.find(kRunParam) == std::string_view::npos)
    return out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (param.empty()) continue;
    std::string_view name = param.substr(0, param.find('='));
    if (name == kPartTargetParam) continue;
    bool keep = name == kRunParam;
    if (!keep && policy.mode == QueryPolicy::Mode::keep) keep = true;
    if (!keep && policy.mode == QueryPolicy::Mode::listed) {
      keep = std::find(policy.names.begin(), policy.names.end(), name) != policy.names.end();
    }
    if (!keep) continue;
    if (!out.empty()) out += '&';
    out.append(param);
  }
  return out;
}

std::optional<int64_t> part_target_ms(std::string_view query) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const size_t eq = param.find('=');
    if (eq == std::string_view::npos || param.substr(0, eq) != kPartTargetParam) continue;
    const std::string_view digits = param.substr(eq + 1);
    if (digits.empty() || digits.size() > 5) return std::nullopt;
    int64_t ms = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      ms = ms * 10 + (c - '0');
    }
    return ms >= 1 && ms <= 60'000 ? std::optional(ms) : std::nullopt;
  }
  return std::nullopt;
}

const QueryPolicy& policy_for_path(const OriginQueryPolicy& policy, std::string_view origin_path) {
  return classify_object(origin_path, "") == ObjectKind::playlist ? policy.playlists
                                                                  : policy.chunks;
}

bool parse_query_mode(std::string_view word, QueryPolicy& out, std::string& problem) {
  if (word == "ignore") {
    out = QueryPolicy{QueryPolicy::Mode::ignore, {}};
  } else if (word == "keep") {
    out = QueryPolicy{QueryPolicy::Mode::keep, {}};
  } else {
    problem = "must be \"ignore\", \"keep\" or a list of parameter names";
    return false;
  }
  return true;
}

}  // namespace cache_node
