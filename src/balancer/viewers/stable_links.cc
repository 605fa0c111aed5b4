#include "balancer/viewers/stable_links.h"

#include <algorithm>
#include <cstddef>
#include <unordered_map>

namespace balancer {

std::vector<uint8_t> keep_listed_hosts(const ListedChunks& previous,
                                       const std::vector<uint64_t>& chunks,
                                       std::string_view current,
                                       const std::function<bool(std::string_view host)>& usable,
                                       ListedChunks& next, const KeptHost& kept) {
  next.hosts.assign(1, std::string(current));
  next.chunks.clear();
  next.chunks.reserve(chunks.size());
  // The steady case: everything listed before went to `current` (or nothing was listed).
  // Every chunk then goes to `current`, found or not: no search.
  if (previous.hosts.empty() || (previous.hosts.size() == 1 && previous.hosts[0] == current)) {
    for (uint64_t hash : chunks) next.chunks.emplace_back(hash, 0);
    return std::vector<uint8_t>(chunks.size(), 0);
  }
  std::vector<uint8_t> out;
  out.reserve(chunks.size());
  std::vector<int> verdict(previous.hosts.size(),
                           -1);  // per previous host: -1 unknown, else usable?
  // Both listings are in playlist order and the window slides: the chunk after the last
  // one found is usually the next one asked. Elsewhere (the first chunk: one scan; a later
  // gap: an index of the previous listing, built once) a listing costs O(chunks), not
  // O(chunks²), whatever the window's length.
  const auto& listed = previous.chunks;
  size_t cursor = 0;
  bool scanned = false;
  std::unordered_map<uint64_t, size_t> position;  // built at the second miss
  auto flagged = [](const std::vector<bool>* flags, size_t chunk) {
    return flags != nullptr && chunk < flags->size() && (*flags)[chunk];
  };
  auto kept_here = [&](const std::string& host, size_t chunk) {
    return !kept.host.empty() && host == kept.host &&
           (kept.only == nullptr || flagged(kept.only, chunk) ||
            (kept.playing && flagged(kept.while_playing, chunk)));
  };
  for (size_t chunk = 0; chunk < chunks.size(); ++chunk) {
    const uint64_t hash = chunks[chunk];
    uint8_t index = 0;
    auto found = listed.end();
    if (cursor < listed.size() && listed[cursor].first == hash) {
      found = listed.begin() + static_cast<std::ptrdiff_t>(cursor);
    } else if (!listed.empty() && !scanned) {
      // The first miss (where the window starts now): one scan finds it.
      scanned = true;
      found = std::find_if(listed.begin(), listed.end(),
                           [hash](const auto& c) { return c.first == hash; });
    } else if (!listed.empty()) {
      if (position.empty()) {
        position.reserve(listed.size());
        for (size_t i = listed.size(); i-- > 0;)
          position[listed[i].first] = i;  // the first of equal hashes
      }
      if (auto at = position.find(hash); at != position.end()) {
        found = listed.begin() + static_cast<std::ptrdiff_t>(at->second);
      }
    }
    if (found != listed.end()) cursor = static_cast<size_t>(found - listed.begin()) + 1;
    if (found != listed.end() && found->second < previous.hosts.size()) {
      const std::string& host = previous.hosts[found->second];
      int& ok = verdict[found->second];
      if (ok < 0) ok = host != current && usable(host) ? 1 : 0;
      if (ok == 1 || (host != current && kept_here(host, chunk))) {
        auto at = std::find(next.hosts.begin(), next.hosts.end(), host);
        if (at == next.hosts.end() && next.hosts.size() < 255)
          at = next.hosts.insert(next.hosts.end(), host);
        if (at != next.hosts.end()) index = static_cast<uint8_t>(at - next.hosts.begin());
      }
    }
    next.chunks.emplace_back(hash, index);
    out.push_back(index);
  }
  return out;
}

namespace {

// The same chunks listed again, all on `current` as before: keep_listed_hosts would make the
// listing it has (a viewer polling a playlist that has not changed).
bool listed_again(const ListedChunks& previous, const std::vector<uint64_t>& chunks,
                  std::string_view current) {
  if (previous.hosts.size() != 1 || previous.hosts[0] != current) return false;
  if (previous.chunks.size() != chunks.size()) return false;
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (previous.chunks[i].first != chunks[i]) return false;
  }
  return true;
}

}  // namespace

std::vector<uint8_t> ListingTable::update(const std::string& key,
                                          const std::vector<uint64_t>& chunks,
                                          std::string_view current,
                                          const std::function<bool(std::string_view host)>& usable,
                                          TimePoint now, std::vector<std::string>& hosts,
                                          const KeptHost& kept) {
  Shard& shard = shards_[std::hash<std::string>{}(key) % kShards];
  std::lock_guard lock(shard.mutex);
  auto it = shard.entries.find(key);
  const bool listed_before = it != shard.entries.end();
  if (it == shard.entries.end()) {
    if (shard.entries.size() >= max_) {
      std::erase_if(shard.entries, [&](const auto& e) { return now - e.second.seen > idle_; });
      if (shard.entries.size() >= max_) {
        hosts.assign(1, std::string(current));
        return {};
      }
    }
    it = shard.entries.emplace(key, Entry{}).first;
  }
  KeptHost kept_now = kept;
  kept_now.playing = listed_before && now - it->second.seen <= kept.playing_within;
  it->second.seen = now;
  if (listed_again(it->second.listed, chunks, current)) {
    hosts.assign(1, std::string(current));
    return std::vector<uint8_t>(chunks.size(), 0);
  }
  ListedChunks next;
  std::vector<uint8_t> out =
      keep_listed_hosts(it->second.listed, chunks, current, usable, next, kept_now);
  it->second.listed = std::move(next);
  hosts = it->second.listed.hosts;
  return out;
}

size_t ListingTable::size() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mutex);
    n += s.entries.size();
  }
  return n;
}

}  // namespace balancer
