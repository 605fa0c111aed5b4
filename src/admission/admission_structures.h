// The admission policy's inner data structures (admission_policy.cc only): per-viewer
// nodes and their lists, the ticket queue with O(log q) positions, interned channel and
// cache groups, the slot turnover meter. Not a public interface.
#pragma once

#include <bit>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "admission/admission_policy.h"

namespace admission::detail {

using Seconds = std::chrono::duration<double>;

// Time constant of the slot turnover meter: frees older than a few minutes barely count.
inline constexpr Duration kTurnoverTimeConstant = std::chrono::seconds(60);
// A free after this long without one starts the turnover clock anew.
inline constexpr Duration kTurnoverRestartAfter = 5 * kTurnoverTimeConstant;
// Before a rate (and so a wait) is announced: frees after the first, and time since it. Every
// queued viewer hears its first number from the same early measurement, so that one must not
// be a handful of frees.
inline constexpr uint64_t kTurnoverMinFrees = 10;
inline constexpr Duration kTurnoverMinWindow = std::chrono::seconds(30);
// Bounds of the measured/declared traffic correction: one odd /health reading (a parent tier's
// traffic, a node just restarted) must not make the limit meaningless.
inline constexpr double kMinCorrection = 0.25;
inline constexpr double kMaxCorrection = 4.0;
inline constexpr double kMaxWaitSeconds = 24 * 3600;
// Slack for floating-point sums compared against max_traffic_mbps.
inline constexpr double kTrafficEpsilonMbps = 1e-6;
inline constexpr uint32_t kOrigin = std::numeric_limits<uint32_t>::max();

inline double seconds_of(Duration d) {
  return Seconds(d).count();
}

inline std::chrono::seconds ceil_seconds(double s) {
  if (!(s > 0)) return std::chrono::seconds(0);
  return std::chrono::seconds(static_cast<int64_t>(std::ceil(std::min(s, kMaxWaitSeconds))));
}

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// Viewers and bandwidth of a set of active viewers (all, those on caches, one channel, one cache).
struct Traffic {
  uint64_t viewers = 0;
  uint64_t known = 0;      // viewers whose variant BANDWIDTH is known
  uint64_t known_bps = 0;  // sum of those BANDWIDTHs

  void add(uint32_t bandwidth_bps, bool plus) {
    const bool known_bandwidth = bandwidth_bps != 0;
    if (plus) {
      viewers += 1;
      known += known_bandwidth ? 1 : 0;
      known_bps += bandwidth_bps;
    } else {
      assert(viewers > 0 && known_bps >= bandwidth_bps);
      viewers -= 1;
      known -= known_bandwidth ? 1 : 0;
      known_bps -= bandwidth_bps;
    }
  }
  // Viewers with unknown bandwidth count at `mean_bps` (the mean over all known viewers).
  double declared_mbps(double mean_bps) const {
    return (static_cast<double>(known_bps) + static_cast<double>(viewers - known) * mean_bps) / 1e6;
  }
};

enum class State : uint8_t { active, queued };

// What one client address holds, for the per-address bounds.
struct AddressUse {
  const std::string* key = nullptr;  // the map's own key, to erase this entry
  uint32_t entries = 0;              // viewers (any state) counted against this address
  uint32_t anonymous = 0;            // of those, anonymous viewers
  uint32_t tickets = 0;              // of those, queue tickets
};

// The streams one account holds (admitted or queued), for max_streams_per_account.
struct AccountUse {
  const std::string* key = nullptr;  // the map's own key, to erase this entry
  uint32_t streams = 0;
};

// The use counted against `name` (an address or an account), or null when nothing is.
template <typename Use>
const Use* find_use(const StringMap<Use>& uses, std::string_view name) {
  if (name.empty()) return nullptr;
  auto found = uses.find(name);
  return found == uses.end() ? nullptr : &found->second;
}

// The use counted against `name`, created empty if need be. Erase it when its count drops to 0.
template <typename Use>
Use& use_of(StringMap<Use>& uses, std::string_view name) {
  auto [at, created] = uses.try_emplace(std::string(name));
  if (created) at->second.key = &at->first;
  return at->second;
}

// Per-viewer state: 96 bytes here, ~200 bytes with the hash map node and the key.
struct Node {
  Node* prev = nullptr;  // in the active or the queued list, ordered by last_seen
  Node* next = nullptr;
  const std::string* key = nullptr;  // the map's own key, to erase this entry
  AddressUse* address = nullptr;     // the address it arrived from; null = not counted
  AccountUse* account = nullptr;     // the account it plays for; null = not counted
  TimePoint last_seen;               // last refresh (active) or renewal (queued)
  TimePoint since;                   // admitted at (active) or ticket issued at (queued)
  TimePoint offer_deadline;          // queued with a reserved slot: claim it before this
  uint64_t ticket = 0;
  uint32_t queue_index = 0;  // slot in TicketQueue::order_
  uint32_t bandwidth_bps = 0;
  uint32_t channel = 0;
  uint32_t cache = kOrigin;
  float offer_cost_mbps = 0;  // traffic reserved with the slot
  State state = State::queued;
  bool anonymous = false;
};

// Intrusive doubly linked list; a node is in at most one list at a time.
class NodeList {
 public:
  Node* front() const { return head_; }
  void push_back(Node& n) {
    n.prev = tail_;
    n.next = nullptr;
    (tail_ != nullptr ? tail_->next : head_) = &n;
    tail_ = &n;
  }
  void erase(Node& n) {
    (n.prev != nullptr ? n.prev->next : head_) = n.next;
    (n.next != nullptr ? n.next->prev : tail_) = n.prev;
    n.prev = n.next = nullptr;
  }
  void move_to_back(Node& n) {
    if (tail_ == &n) return;
    erase(n);
    push_back(n);
  }

 private:
  Node* head_ = nullptr;
  Node* tail_ = nullptr;
};

// Fenwick (binary indexed) tree over 0/1 flags: prefix sums, point updates and "k-th set flag"
// in O(log n); appending is O(log n) too, so the tree grows with the queue without a rebuild.
class Fenwick {
 public:
  std::size_t size() const { return tree_.size(); }
  void clear() { tree_ = {}; }

  void push_back(int32_t value) {
    const std::size_t i = tree_.size() + 1;  // 1-based index of the new element
    // tree[i] covers (i - lowbit(i), i]; the nodes met walking down from i - 1 tile that range.
    int64_t sum = value;
    for (std::size_t j = i - 1; j > i - lowbit(i); j -= lowbit(j)) sum += tree_[j - 1];
    tree_.push_back(static_cast<int32_t>(sum));
  }
  void add(std::size_t index, int32_t delta) {
    for (std::size_t i = index + 1; i <= tree_.size(); i += lowbit(i)) tree_[i - 1] += delta;
  }
  // Sum of the first `count` elements.
  int64_t prefix(std::size_t count) const {
    int64_t sum = 0;
    for (std::size_t i = count; i > 0; i -= lowbit(i)) sum += tree_[i - 1];
    return sum;
  }
  // 0-based index of the element at which the prefix sum reaches k (1 <= k <= total).
  std::size_t find(int64_t k) const {
    std::size_t pos = 0;
    for (std::size_t step = std::bit_floor(tree_.size()); step != 0; step >>= 1) {
      if (pos + step <= tree_.size() && tree_[pos + step - 1] < k) {
        pos += step;
        k -= tree_[pos - 1];
      }
    }
    return pos;
  }
  // n elements, all 1, in O(n).
  void assign_ones(std::size_t n) {
    tree_.resize(n);
    for (std::size_t i = 1; i <= n; ++i) tree_[i - 1] = static_cast<int32_t>(lowbit(i));
  }

 private:
  static std::size_t lowbit(std::size_t i) { return i & (~i + 1); }
  std::vector<int32_t> tree_;
};

// The waiting queue in ticket order. Tickets are issued in increasing order and appended, so
// the array order is the ticket order. A ticket can leave from anywhere (admitted, expired,
// released): its cell becomes a tombstone and a Fenwick tree over "cell is live" flags turns
// "how many live tickets are ahead of me" (the position) and "who is at position k" into
// O(log q) queries. When tombstones outnumber live tickets the array is compacted in O(q),
// which the removals since the last compaction pay for: O(1) amortised per removal, and the
// array never holds more than 2q + kSlack cells.
class TicketQueue {
 public:
  std::size_t size() const { return live_; }

  void push(Node& n) {
    n.queue_index = static_cast<uint32_t>(order_.size());
    order_.push_back(&n);
    live_flags_.push_back(1);
    ++live_;
  }
  uint64_t position(const Node& n) const {
    return static_cast<uint64_t>(live_flags_.prefix(n.queue_index + std::size_t{1}));
  }
  Node& at(uint64_t position) const {
    assert(position >= 1 && position <= live_);
    return *order_[live_flags_.find(static_cast<int64_t>(position))];
  }
  void erase(Node& n) {
    assert(order_[n.queue_index] == &n);
    order_[n.queue_index] = nullptr;
    live_flags_.add(n.queue_index, -1);
    --live_;
    if (live_ == 0) {
      order_.clear();
      if (order_.capacity() > kSlack * 16) order_ = {};
      live_flags_.clear();
    } else if (order_.size() > 2 * live_ + kSlack) {
      compact();
    }
  }

 private:
  static constexpr std::size_t kSlack = 64;

  void compact() {
    std::size_t out = 0;
    for (Node* n : order_) {
      if (n == nullptr) continue;
      n->queue_index = static_cast<uint32_t>(out);
      order_[out++] = n;
    }
    order_.resize(out);
    live_flags_.assign_ones(out);
  }

  std::vector<Node*> order_;  // ticket order; nullptr = ticket gone
  Fenwick live_flags_;
  std::size_t live_ = 0;
};

// Channel or cache ids interned to small numbers, reference-counted by the viewers on them so
// the table holds only names in use.
struct Group {
  std::string name;
  uint32_t refs = 0;  // active and queued viewers naming this group
  Traffic traffic;    // active viewers only
};

class GroupTable {
 public:
  uint32_t acquire(std::string_view name) {
    uint32_t id;
    if (auto it = ids_.find(name); it != ids_.end()) {
      id = it->second;
    } else if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
      groups_[id].name = name;
      ids_.emplace(groups_[id].name, id);
    } else {
      id = static_cast<uint32_t>(groups_.size());
      groups_.push_back(Group{std::string(name), 0, {}});
      ids_.emplace(groups_[id].name, id);
    }
    ++groups_[id].refs;
    return id;
  }
  void release(uint32_t id) {
    Group& g = groups_[id];
    assert(g.refs > 0);
    if (--g.refs != 0) return;
    ids_.erase(ids_.find(g.name));
    g = Group{};
    free_.push_back(id);
  }
  Group& operator[](uint32_t id) { return groups_[id]; }
  const std::vector<Group>& all() const { return groups_; }

 private:
  std::vector<Group> groups_;
  std::vector<uint32_t> free_;
  StringMap<uint32_t> ids_;
};

// Slot turnover: an exponentially decayed count of slot frees, S(t) = sum exp(-(t - t_i)/tau),
// observed from a first free on. That first free only starts the clock, and the latest is left
// out too: a rate measured just as a free happens would otherwise be n/(n-1) too high (the
// window ends on an event), and every queued viewer would hear that. For frees at a steady
// rate r for a time T, S = r * tau * (1 - exp(-T/tau)), so dividing by that window gives r
// without start-up bias, and a long lull lets the rate (and so the wait estimate) drift. After
// kTurnoverRestartAfter without a free, the next free starts the clock anew: the quiet time
// before a queue forms says nothing about how fast it will move.
class TurnoverMeter {
 public:
  void record(TimePoint at) {
    if (count_ == 0 || (at >= last_ && at - last_ > kTurnoverRestartAfter)) {
      first_ = at;
      last_ = at;
      sum_ = 0;
      count_ = 0;
    } else if (at >= last_) {
      sum_ = sum_ * decay(at - last_) + 1;
      last_ = at;
    } else {
      sum_ += decay(last_ - at);
    }
    ++count_;
  }
  // Frees per second around `now`; nullopt until enough frees were observed for long enough.
  std::optional<double> rate(TimePoint now) const {
    if (count_ <= kTurnoverMinFrees || now - first_ < kTurnoverMinWindow) return std::nullopt;
    const double tau = seconds_of(kTurnoverTimeConstant);
    const double observed = seconds_of(now - first_);
    const double latest = now > last_ ? decay(now - last_) : 1;
    const double current = std::max(0.0, sum_ * latest - latest);
    return current / (tau * -std::expm1(-observed / tau));
  }

 private:
  static double decay(Duration d) {
    return std::exp(-seconds_of(d) / seconds_of(kTurnoverTimeConstant));
  }

  double sum_ = 0;  // decayed count of the frees after the first
  TimePoint first_;
  TimePoint last_;
  uint64_t count_ = 0;  // frees since the clock started, the first included
};

// What one call changes about a viewer's stream. nullopt keeps the current value.
struct StreamUpdate {
  std::optional<std::string_view> channel;
  std::optional<std::string_view> cache;  // empty = origin
  uint32_t bandwidth_bps = 0;             // 0 keeps the current value
};

inline uint32_t saturate_bps(uint64_t bps) {
  return static_cast<uint32_t>(std::min<uint64_t>(bps, std::numeric_limits<uint32_t>::max()));
}

}  // namespace admission::detail
