#include "audience/player_rules.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "core/enum_names.h"

namespace audience {

double reload_delay_s(double target_duration_s, bool changed) {
  const double td = std::max(target_duration_s, 0.1);
  return changed ? td : td / 2;
}

size_t live_start_index(const std::vector<double>& segment_durations, double hold_back_s) {
  double after = 0;
  for (size_t i = segment_durations.size(); i > 0; --i) {
    after += segment_durations[i - 1];
    if (after >= hold_back_s) return i - 1;
  }
  return 0;
}

std::optional<VariantPolicy> parse_variant_policy(std::string_view text) {
  if (text == "top") return VariantPolicy::top;
  if (text == "bottom") return VariantPolicy::bottom;
  if (text == "abr") return VariantPolicy::abr;
  return std::nullopt;
}

std::string_view variant_policy_name(VariantPolicy policy) {
  // Indexed by VariantPolicy: its last enumerator, abr, must stay last.
  static constexpr const char* kPolicyNames[] = {"top", "bottom", "abr"};
  static_assert(std::size(kPolicyNames) == core::enum_count(VariantPolicy::abr));
  return core::enum_name(policy, kPolicyNames);
}

size_t choose_variant(VariantPolicy policy, const std::vector<uint64_t>& bandwidths,
                      std::optional<double> estimate_bps, double safety) {
  assert(!bandwidths.empty());
  const auto lowest = static_cast<size_t>(std::min_element(bandwidths.begin(), bandwidths.end()) -
                                          bandwidths.begin());
  const auto highest = static_cast<size_t>(std::max_element(bandwidths.begin(), bandwidths.end()) -
                                           bandwidths.begin());
  if (policy == VariantPolicy::top) return highest;
  if (policy == VariantPolicy::bottom || !estimate_bps) return lowest;
  const double affordable = *estimate_bps * safety;
  size_t best = lowest;
  for (size_t i = 0; i < bandwidths.size(); ++i) {
    if (static_cast<double>(bandwidths[i]) <= affordable && bandwidths[i] > bandwidths[best])
      best = i;
  }
  return best;
}

void ThroughputEstimate::Ewma::add(double weight_s, double value) {
  const double alpha = std::exp(std::log(0.5) / half_life_s);
  const double adj = std::pow(alpha, weight_s);
  estimate = value * (1 - adj) + adj * estimate;
  total_weight += weight_s;
}

double ThroughputEstimate::Ewma::value() const {
  // Corrects the bias toward the zero start while few samples are in.
  const double alpha = std::exp(std::log(0.5) / half_life_s);
  const double zero_factor = 1 - std::pow(alpha, total_weight);
  return zero_factor > 0 ? estimate / zero_factor : estimate;
}

void ThroughputEstimate::add(uint64_t bytes, double seconds) {
  if (seconds <= 0) return;
  // A download too short to time still says the link was at least this fast.
  const double weight = std::max(seconds, 0.01);
  const double bps = static_cast<double>(bytes) * 8 / weight;
  fast_.add(weight, bps);
  slow_.add(weight, bps);
  any_ = true;
}

std::optional<double> ThroughputEstimate::bps() const {
  if (!any_) return std::nullopt;
  return std::min(fast_.value(), slow_.value());
}

}  // namespace audience

namespace audience {

std::string with_query_param(std::string_view url, std::string_view name, std::string_view value) {
  const size_t hash = url.find('#');
  const std::string_view fragment =
      hash == std::string_view::npos ? std::string_view{} : url.substr(hash);
  std::string base(url.substr(0, hash));
  const size_t query = base.find('?');
  if (query != std::string::npos) {
    size_t at = query + 1;
    while (at <= base.size()) {
      size_t end = base.find('&', at);
      if (end == std::string::npos) end = base.size();
      const std::string_view pair = std::string_view(base).substr(at, end - at);
      const std::string_view key = pair.substr(0, pair.find('='));
      if (key == name) {
        base.replace(at, end - at, std::string(name) + "=" + std::string(value));
        return base + std::string(fragment);
      }
      at = end + 1;
    }
  }
  if (query == std::string::npos) {
    base += '?';
  } else if (base.back() != '?' && base.back() != '&') {
    base += '&';
  }
  base += std::string(name) + "=" + std::string(value);
  return base + std::string(fragment);
}

std::optional<std::string> tag_attribute(std::string_view line, std::string_view name) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  size_t at = colon + 1;
  while (at < line.size()) {
    const size_t eq = line.find('=', at);
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view key = line.substr(at, eq - at);
    while (!key.empty() && (key.front() == ' ' || key.front() == '\t')) key.remove_prefix(1);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
    size_t value_end;
    std::string value;
    if (eq + 1 < line.size() && line[eq + 1] == '"') {
      const size_t close = line.find('"', eq + 2);
      if (close == std::string_view::npos) return std::nullopt;
      value = std::string(line.substr(eq + 2, close - eq - 2));
      value_end = line.find(',', close);
    } else {
      value_end = line.find(',', eq + 1);
      value = std::string(line.substr(eq + 1, value_end == std::string_view::npos
                                                  ? std::string_view::npos
                                                  : value_end - eq - 1));
    }
    if (key == name) return value;
    if (value_end == std::string_view::npos) return std::nullopt;
    at = value_end + 1;
  }
  return std::nullopt;
}

}  // namespace audience
