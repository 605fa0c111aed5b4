#include "cache_node/fetching/prefetch.h"

#include <algorithm>

#include "core/json.h"

namespace cache_node {

core::Result<std::vector<std::string>> parse_prefetch_body(std::string_view body) {
  auto bad = [](std::string message) { return core::Error{"bad_request", std::move(message)}; };
  rapidjson::Document doc;
  if (!core::parse_json(body, doc).ok() || !doc.IsObject())
    return bad("The body must be a JSON object.");
  auto chunks = doc.FindMember("chunks");
  if (chunks == doc.MemberEnd() || !chunks->value.IsArray())
    return bad("\"chunks\" must be an array of chunk paths.");
  const auto& list = chunks->value;
  if (list.Empty() || list.Size() > kMaxPrefetchChunks) {
    return bad("\"chunks\" must name 1 to " + std::to_string(kMaxPrefetchChunks) + " chunks.");
  }
  std::vector<std::string> out;
  out.reserve(list.Size());
  for (const auto& item : list.GetArray()) {
    if (!item.IsString()) return bad("Every entry of \"chunks\" must be a string.");
    out.emplace_back(item.GetString(), item.GetStringLength());
  }
  return out;
}

bool prefetch_key_matches(std::string_view presented, std::string_view configured) {
  // Over the configured key's length whatever is presented: the time says nothing of the key.
  unsigned char diff = presented.size() == configured.size() ? 0 : 1;
  for (size_t i = 0; i < configured.size(); ++i) {
    const unsigned char p = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= static_cast<unsigned char>(p ^ static_cast<unsigned char>(configured[i]));
  }
  return diff == 0;
}

bool PrefetchGate::admit(int64_t now_ms, double per_s, size_t max_inflight) {
  std::lock_guard lock(mutex_);
  const double burst = std::max(1.0, per_s);
  if (tokens_ < 0) {
    tokens_ = burst;
  } else if (now_ms > refilled_ms_) {
    tokens_ =
        std::min(burst, tokens_ + per_s * static_cast<double>(now_ms - refilled_ms_) / 1000.0);
  }
  refilled_ms_ = std::max(refilled_ms_, now_ms);
  if (inflight_ >= max_inflight || tokens_ < 1) return false;
  tokens_ -= 1;
  ++inflight_;
  return true;
}

void PrefetchGate::finished() {
  std::lock_guard lock(mutex_);
  if (inflight_ > 0) --inflight_;
}

size_t PrefetchGate::inflight() const {
  std::lock_guard lock(mutex_);
  return inflight_;
}

void PrefetchLedger::prefetched(const std::string& key, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  awaiting_[key] = now_ms;
  order_.emplace_back(key, now_ms);
  while (awaiting_.size() > max_entries_ && !order_.empty()) {
    auto it = awaiting_.find(order_.front().first);
    if (it != awaiting_.end() && it->second == order_.front().second) awaiting_.erase(it);
    order_.pop_front();
  }
  count_.store(awaiting_.size(), std::memory_order_relaxed);
}

bool PrefetchLedger::first_viewer(const std::string& key) {
  if (count_.load(std::memory_order_relaxed) == 0)
    return false;  // the request path, most of the time
  std::lock_guard lock(mutex_);
  const bool first = awaiting_.erase(key) > 0;
  count_.store(awaiting_.size(), std::memory_order_relaxed);
  return first;
}

size_t PrefetchLedger::expire(int64_t now_ms) {
  std::lock_guard lock(mutex_);
  size_t wasted = 0;
  while (!order_.empty() && now_ms - order_.front().second >= forget_after_ms_) {
    auto it = awaiting_.find(order_.front().first);
    // Skipped: asked for already, or prefetched again later (its newer entry counts).
    if (it != awaiting_.end() && it->second == order_.front().second) {
      awaiting_.erase(it);
      ++wasted;
    }
    order_.pop_front();
  }
  // Entries asked for leave the queue only from its front: bound it too.
  while (order_.size() > 2 * max_entries_ + 1) {
    auto it = awaiting_.find(order_.front().first);
    if (it != awaiting_.end() && it->second == order_.front().second) awaiting_.erase(it);
    order_.pop_front();
  }
  count_.store(awaiting_.size(), std::memory_order_relaxed);
  return wasted;
}

size_t PrefetchLedger::size() const {
  std::lock_guard lock(mutex_);
  return awaiting_.size();
}

}  // namespace cache_node
