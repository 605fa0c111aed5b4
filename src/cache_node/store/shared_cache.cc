#include "cache_node/store/shared_cache.h"

#include <algorithm>
#include <cassert>

namespace cache_node {

FlightProgress Flight::progress() const {
  std::lock_guard lock(mutex_);
  FlightProgress copy = progress_;
  copy.bytes = body_->size();
  return copy;
}

void Flight::set_head(int status, ChunkMeta meta, std::optional<uint64_t> content_length) {
  std::lock_guard lock(mutex_);
  progress_.head_known = true;
  progress_.status = status;
  progress_.meta = std::move(meta);
  progress_.content_length = content_length;
}

void Flight::set_meta_size(uint64_t size) {
  std::lock_guard lock(mutex_);
  progress_.meta.size = size;
}

void Flight::end(FlightProgress::End how, int status, std::string code, std::string message,
                 std::string retry_after) {
  std::lock_guard lock(mutex_);
  progress_.end = how;
  progress_.fail_status = status;
  progress_.fail_code = std::move(code);
  progress_.fail_message = std::move(message);
  progress_.fail_retry_after = std::move(retry_after);
}

void Flight::end_from_store(FlightProgress::End how, ChunkMeta meta) {
  assert(stale_.has_value());
  std::lock_guard lock(mutex_);
  progress_.end = how;
  progress_.meta = std::move(meta);
}

bool Flight::subscribe(size_t loop) {
  std::lock_guard lock(mutex_);
  if (std::find(subscribers_.begin(), subscribers_.end(), loop) != subscribers_.end()) return false;
  subscribers_.push_back(loop);
  return true;
}

std::vector<size_t> Flight::subscribers() const {
  std::lock_guard lock(mutex_);
  return subscribers_;
}

SharedCache::SharedCache(std::unique_ptr<ChunkStore> store, const core::Clock& clock,
                         size_t max_negative, core::Counter& negative_refused)
    : store_(std::move(store)),
      clock_(clock),
      max_negative_(max_negative),
      negative_refused_(negative_refused) {}

SharedCache::Lookup SharedCache::find_or_start(const std::string& key, size_t loop,
                                               ChunkStore::ReadBy by) {
  std::lock_guard lock(mutex_);
  Lookup out;
  auto neg = negative_.find(key);
  if (neg != negative_.end()) {
    if (clock_.now() < neg->second) {
      out.kind = Lookup::Kind::negative;
      return out;
    }
    negative_.erase(neg);
  }
  // Again under the lock: the chunk may have been stored or refreshed since the
  // caller's find().
  std::optional<StoreHit> stored = store_->find(key, by);
  if (stored && clock_.unix_now_ms() < stored->meta.fresh_until_ms) {
    out.kind = Lookup::Kind::hit;
    out.hit = std::move(stored);
    return out;
  }
  auto found = flights_.find_or_start(key);
  assert(found.flight != nullptr);  // no cap on flights
  if (found.outcome == http::JoinOutcome::started) {
    out.kind = stored ? Lookup::Kind::revalidate : Lookup::Kind::started;
    out.stale = stored;
    *found.flight = std::make_shared<Flight>(key, loop, std::move(stored));
  } else {
    out.kind = Lookup::Kind::joined;
    out.stale = std::move(stored);
  }
  out.flight = *found.flight;
  out.flight->subscribe(loop);
  return out;
}

void SharedCache::finish(const Flight& flight, StoreUpdate update, const ChunkMeta* meta,
                         std::optional<core::SteadyTime::duration> negative_ttl) {
  std::lock_guard lock(mutex_);
  switch (update) {
    case StoreUpdate::none:
      break;
    case StoreUpdate::put:
      assert(meta != nullptr);
      store_->put(flight.key(), *meta, flight.body());
      break;
    case StoreUpdate::refresh:
      assert(meta != nullptr);
      store_->refresh(flight.key(), *meta);
      break;
    case StoreUpdate::erase:
      store_->erase(flight.key());
      break;
  }
  if (negative_ttl && negative_ttl->count() > 0) {
    // Bounded by count as well as time: a flood of distinct missing names
    // cannot grow the table past max_negative_ (expired ones go at the tick).
    if (negative_.size() < max_negative_ || negative_.count(flight.key()) > 0) {
      negative_[flight.key()] = clock_.now() + *negative_ttl;
    } else {
      negative_refused_.inc();
    }
  }
  const std::shared_ptr<Flight>* running = flights_.flight(flight.key());
  if (running != nullptr && running->get() == &flight) flights_.finish(flight.key());
}

size_t SharedCache::inflight() const {
  std::lock_guard lock(mutex_);
  return flights_.size();
}

void SharedCache::expire_negative() {
  std::lock_guard lock(mutex_);
  auto now = clock_.now();
  for (auto it = negative_.begin(); it != negative_.end();) {
    it = now >= it->second ? negative_.erase(it) : std::next(it);
  }
}

size_t SharedCache::negative_entries() const {
  std::lock_guard lock(mutex_);
  return negative_.size();
}

void SharedCache::set_max_negative(size_t max_negative) {
  std::lock_guard lock(mutex_);
  max_negative_ = max_negative;
}

}  // namespace cache_node
