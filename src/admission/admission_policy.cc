#include "admission/admission_policy.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <utility>

#include "admission/admission_structures.h"

namespace admission {

using namespace detail;

std::optional<std::string> validate_admission_limits(const AdmissionLimits& l) {
  if (!std::isfinite(l.max_traffic_mbps) || l.max_traffic_mbps < 0)
    return "limits.max_traffic_mbps must be a finite number >= 0 (0 = unlimited)";
  if (l.idle_timeout <= Duration::zero()) return "limits.idle_timeout_s must be > 0";
  if (l.retry_after < std::chrono::seconds(1)) return "queue.retry_after_s must be >= 1";
  if (l.ticket_grace < l.retry_after)
    return "queue.ticket_grace_s must be >= queue.retry_after_s, or viewers that obey "
           "Retry-After lose their ticket";
  if (l.max_entries != 0 && l.max_streams > l.max_entries)
    return "limits.max_entries must be 0 (unlimited) or >= limits.max_streams";
  if (l.head_reservation < l.retry_after)
    return "queue.head_reservation_s must be >= queue.retry_after_s, or viewers that obey "
           "Retry-After miss the slot reserved for them";
  return std::nullopt;
}

class AdmissionPolicy::Impl {
 public:
  explicit Impl(const AdmissionLimits& limits) : limits_(limits) {}

  AdmissionDecision handle(ViewerKey key, const StreamUpdate& update, TimePoint now,
                           const ViewerSource& from) {
    if (key.empty() || key.size() > kMaxViewerKeyBytes) return {};
    now = advance(now);
    expire_due(now);
    auto it = viewers_.find(key);
    if (it == viewers_.end()) return arrive(key, update, now, from);

    Node& n = it->second;
    const bool changed = apply(n, update);
    n.last_seen = now;
    if (n.state == State::active) {
      active_.move_to_back(n);
      if (changed) reconcile(now);  // a new bandwidth moves the traffic estimate
      return admitted();
    }
    queued_.move_to_back(n);
    if (changed) reconcile(now);  // its own bandwidth may now fit a freed slot
    const uint64_t position = queue_.position(n);
    if (position <= offers_) {
      admit_from_queue(n, now);
      reconcile(now);
      return admitted();
    }
    return queued(n, position, now);
  }

  void expire(TimePoint now) { expire_due(advance(now)); }

  bool release(ViewerKey key, TimePoint now) {
    now = advance(now);
    expire_due(now);
    auto it = viewers_.find(key);
    if (it == viewers_.end()) return false;
    Node& n = it->second;
    if (n.state == State::active) {
      free_slot(n, now);
    } else {
      drop_ticket(n);
    }
    ++counters_.released;
    reconcile(now);
    return true;
  }

  void set_limits(const AdmissionLimits& limits, TimePoint now) {
    now = advance(now);
    limits_ = limits;
    expire_due(now);
    reconcile(now);
  }

  void set_emulation(bool on, TimePoint now) {
    now = advance(now);
    emulation_ = on;
    expire_due(now);
    reconcile(now);
  }

  void set_measured(std::optional<double> mbps, TimePoint now) {
    now = advance(now);
    expire_due(now);
    if (mbps && (!std::isfinite(*mbps) || *mbps < 0)) mbps.reset();
    measured_mbps_ = mbps;
    if (!mbps) {
      correction_ = 1;
    } else {
      // Compare with what the same viewers declare now; with no one on caches there is nothing
      // to compare and the last correction stays.
      const double declared = on_caches_.declared_mbps(mean_bps());
      if (declared > 0) correction_ = std::clamp(*mbps / declared, kMinCorrection, kMaxCorrection);
    }
    reconcile(now);
  }

  AdmissionStatus status(TimePoint now) {
    now = advance(now);
    expire_due(now);
    AdmissionStatus s;
    s.limits = limits_;
    s.emulation = emulation_;
    s.active_viewers = all_.viewers;
    s.origin_viewers = all_.viewers - on_caches_.viewers;
    s.queued_viewers = queue_.size();
    s.reserved_slots = offers_;
    if (queue_.size() != 0) s.head_waited = ceil_seconds(seconds_of(now - queue_.at(1).since));
    const bool newcomer_admitted =
        !emulation_ && offers_ == queue_.size() &&
        fits(offers_ + 1, reserved_mbps_ + correction_ * mean_bps() / 1e6);
    if (!newcomer_admitted) s.next_wait = estimated_wait(queue_.size() + 1, now);
    const double mean = mean_bps();
    s.declared_mbps = all_.declared_mbps(mean);
    s.traffic_estimate_mbps = correction_ * s.declared_mbps;
    s.correction = correction_;
    s.measured_cache_mbps = measured_mbps_;
    s.slot_free_rate_per_s = turnover_.rate(now);
    s.channels = counts(channels_, mean);
    s.caches = counts(caches_, mean);
    s.counters = counters_;
    return s;
  }

 private:
  TimePoint advance(TimePoint now) {
    last_now_ = std::max(last_now_, now);
    return last_now_;
  }

  // --- state transitions ---------------------------------------------------------------------

  AdmissionDecision arrive(ViewerKey key, const StreamUpdate& update, TimePoint now,
                           const ViewerSource& from) {
    if (limits_.max_entries != 0 && viewers_.size() >= limits_.max_entries) {
      ++counters_.refused_full;
      return refused(AdmissionDecision::Refusal::full);
    }
    // A device more than the account may play at once, admitted or waiting.
    if (const AccountUse* held = find_use(accounts_, from.account);
        held != nullptr && limits_.max_streams_per_account != 0 &&
        held->streams >= limits_.max_streams_per_account) {
      ++counters_.refused_account;
      return refused(AdmissionDecision::Refusal::account_streams);
    }
    // Everyone waiting already holds a reserved slot and there is room beyond theirs: the
    // newcomer jumps no one. (With an empty queue this is just "the limits allow one more".)
    const bool admit_now =
        !emulation_ && offers_ == queue_.size() &&
        fits(offers_ + 1, reserved_mbps_ + newcomer_cost_mbps(update.bandwidth_bps));
    AddressUse* address = nullptr;
    if (!from.address.empty()) {
      const AddressUse* use = find_use(addresses_, from.address);
      if (from.anonymous && limits_.max_anonymous_per_address != 0 && use != nullptr &&
          use->anonymous >= limits_.max_anonymous_per_address) {
        ++counters_.refused_address;
        return refused(AdmissionDecision::Refusal::address_viewers);
      }
      if (!admit_now && limits_.max_tickets_per_address != 0 && use != nullptr &&
          use->tickets >= limits_.max_tickets_per_address) {
        ++counters_.refused_address;
        return refused(AdmissionDecision::Refusal::address_tickets);
      }
      address = &use_of(addresses_, from.address);
    }
    auto [it, inserted] = viewers_.try_emplace(std::string(key));
    assert(inserted);
    Node& n = it->second;
    n.key = &it->first;
    n.anonymous = from.anonymous;
    n.address = address;
    if (address != nullptr) {
      ++address->entries;
      address->anonymous += from.anonymous ? 1 : 0;
    }
    if (!from.account.empty()) {
      n.account = &use_of(accounts_, from.account);
      ++n.account->streams;
    }
    n.channel = channels_.acquire(update.channel.value_or(std::string_view()));
    const std::string_view cache = update.cache.value_or(std::string_view());
    n.cache = cache.empty() ? kOrigin : caches_.acquire(cache);
    n.bandwidth_bps = update.bandwidth_bps;
    n.last_seen = n.since = now;
    if (admit_now) {
      activate(n, now);
      return admitted();
    }
    n.state = State::queued;
    n.ticket = next_ticket_++;
    queue_.push(n);
    queued_.push_back(n);
    if (n.address != nullptr) ++n.address->tickets;
    ++counters_.tickets_issued;
    return queued(n, queue_.size(), now);
  }

  void activate(Node& n, TimePoint now) {
    n.state = State::active;
    n.ticket = 0;
    n.since = n.last_seen = now;
    account(n, true);
    active_.push_back(n);
    ++counters_.admitted;
  }

  void admit_from_queue(Node& n, TimePoint now) {
    leave_queue(n);
    activate(n, now);
    ++counters_.admitted_from_queue;
  }

  void leave_queue(Node& n) {
    if (queue_.position(n) <= offers_) {
      --offers_;
      reserved_mbps_ = offers_ == 0 ? 0 : reserved_mbps_ - n.offer_cost_mbps;
    }
    queue_.erase(n);
    queued_.erase(n);
    if (n.address != nullptr) --n.address->tickets;
  }

  void drop_ticket(Node& n) {
    leave_queue(n);
    forget(n);
  }

  void free_slot(Node& n, TimePoint at) {
    account(n, false);
    active_.erase(n);
    turnover_.record(at);
    forget(n);
  }

  void forget(Node& n) {
    channels_.release(n.channel);
    if (n.cache != kOrigin) caches_.release(n.cache);
    if (AddressUse* address = n.address; address != nullptr) {
      address->anonymous -= n.anonymous ? 1 : 0;
      if (--address->entries == 0) addresses_.erase(addresses_.find(*address->key));
    }
    if (AccountUse* owner = n.account; owner != nullptr && --owner->streams == 0) {
      accounts_.erase(accounts_.find(*owner->key));
    }
    viewers_.erase(viewers_.find(*n.key));
  }

  // Applies `update` to the viewer; returns whether anything changed.
  bool apply(Node& n, const StreamUpdate& update) {
    const bool channel_changes = update.channel && channels_[n.channel].name != *update.channel;
    const bool cache_changes =
        update.cache &&
        (n.cache == kOrigin ? !update.cache->empty() : caches_[n.cache].name != *update.cache);
    const bool bandwidth_changes =
        update.bandwidth_bps != 0 && update.bandwidth_bps != n.bandwidth_bps;
    if (!channel_changes && !cache_changes && !bandwidth_changes) return false;

    const bool active = n.state == State::active;
    if (active) account(n, false);
    if (channel_changes) {
      const uint32_t old = n.channel;
      n.channel = channels_.acquire(*update.channel);
      channels_.release(old);
    }
    if (cache_changes) {
      const uint32_t old = n.cache;
      n.cache = update.cache->empty() ? kOrigin : caches_.acquire(*update.cache);
      if (old != kOrigin) caches_.release(old);
    }
    if (bandwidth_changes) n.bandwidth_bps = update.bandwidth_bps;
    if (active) account(n, true);
    return true;
  }

  void account(const Node& n, bool plus) {
    all_.add(n.bandwidth_bps, plus);
    channels_[n.channel].traffic.add(n.bandwidth_bps, plus);
    if (n.cache != kOrigin) {
      on_caches_.add(n.bandwidth_bps, plus);
      caches_[n.cache].traffic.add(n.bandwidth_bps, plus);
    }
  }

  void expire_due(TimePoint now) {
    bool changed = false;
    // Both lists are ordered by last_seen, so everything due sits at their fronts.
    for (Node* n = active_.front(); n != nullptr && n->last_seen + limits_.idle_timeout <= now;
         n = active_.front()) {
      free_slot(*n, n->last_seen + limits_.idle_timeout);
      ++counters_.slots_expired;
      changed = true;
    }
    for (Node* n = queued_.front(); n != nullptr && n->last_seen + limits_.ticket_grace <= now;
         n = queued_.front()) {
      drop_ticket(*n);
      ++counters_.tickets_expired;
      changed = true;
    }
    // Reserved slots not claimed in time. Reservations are granted in queue order with the same
    // head_reservation, so deadlines grow along the queue and the lapsed ones are at its head
    // (after a reload that changes head_reservation one may lapse a little late).
    // lapse_check_at_ is a lower bound of those deadlines, so most calls skip the O(log q) look.
    while (offers_ != 0 && now >= lapse_check_at_) {
      Node& head = queue_.at(1);
      if (head.offer_deadline > now) {
        lapse_check_at_ = head.offer_deadline;
        break;
      }
      drop_ticket(head);
      ++counters_.reservations_lapsed;
      changed = true;
    }
    if (changed) reconcile(now);
  }

  // Keeps the reserved prefix of the queue in line with the room the limits leave: positions
  // 1..offers_ each hold a slot (and its traffic) until they come back or their deadline passes.
  void reconcile(TimePoint now) {
    // Room shrank (limit lowered, emulation on, estimate went up): take back the last grants.
    while (offers_ != 0 && (emulation_ || !fits(offers_, reserved_mbps_))) {
      reserved_mbps_ -= queue_.at(offers_).offer_cost_mbps;
      --offers_;
    }
    if (offers_ == 0) reserved_mbps_ = 0;
    // Room grew: reserve for the next in line, in order; stop at the first that does not fit.
    // (The first fits() is the common "no room at all" case, answered without a queue look-up.)
    while (!emulation_ && offers_ < queue_.size() && fits(offers_ + 1, reserved_mbps_)) {
      Node& n = queue_.at(offers_ + 1);
      const auto cost = static_cast<float>(cost_mbps(n));
      if (!fits(offers_ + 1, reserved_mbps_ + cost)) break;
      n.offer_deadline = now + limits_.head_reservation;
      if (offers_ == 0 || n.offer_deadline < lapse_check_at_) lapse_check_at_ = n.offer_deadline;
      n.offer_cost_mbps = cost;
      reserved_mbps_ += cost;
      ++offers_;
    }
  }

  // --- estimates -----------------------------------------------------------------------------

  double mean_bps() const {
    return all_.known == 0 ? 0
                           : static_cast<double>(all_.known_bps) / static_cast<double>(all_.known);
  }
  double estimate_mbps() const { return correction_ * all_.declared_mbps(mean_bps()); }
  // Expected traffic of one more viewer: its own variant if known, else the current mean.
  double cost_mbps(const Node& n) const { return newcomer_cost_mbps(n.bandwidth_bps); }
  double newcomer_cost_mbps(uint32_t bandwidth_bps) const {
    return correction_ * (bandwidth_bps != 0 ? bandwidth_bps : mean_bps()) / 1e6;
  }

  // Whether the limits allow `streams` more active viewers adding `mbps` of traffic.
  bool fits(uint64_t streams, double mbps) const {
    if (limits_.max_streams != 0 && all_.viewers + streams > limits_.max_streams) return false;
    if (limits_.max_traffic_mbps > 0 &&
        estimate_mbps() + mbps > limits_.max_traffic_mbps + kTrafficEpsilonMbps) {
      return false;
    }
    return true;
  }

  // Wait of the viewer at `position`: the slot frees needed before the limits leave room for it,
  // over the observed free rate. Unknown until a rate is observed (TurnoverMeter).
  std::optional<std::chrono::seconds> estimated_wait(uint64_t position, TimePoint now) const {
    const std::optional<double> rate = turnover_.rate(now);
    if (!rate || *rate <= 0) return std::nullopt;
    double room = std::numeric_limits<double>::infinity();  // more viewers the limits allow
    if (limits_.max_streams != 0) {
      room = static_cast<double>(limits_.max_streams) - static_cast<double>(all_.viewers);
    }
    const double unit_mbps = correction_ * mean_bps() / 1e6;
    if (limits_.max_traffic_mbps > 0 && unit_mbps > 0) {
      room = std::min(room, std::floor((limits_.max_traffic_mbps - estimate_mbps()) / unit_mbps));
    }
    if (emulation_) room = std::min(room, 0.0);  // emulation has no known end
    const double frees = std::max(1.0, static_cast<double>(position) - room);
    return ceil_seconds(frees / *rate);
  }

  AdmissionDecision admitted() const {
    AdmissionDecision d;
    d.kind = AdmissionDecision::Kind::admitted;
    return d;
  }

  AdmissionDecision refused(AdmissionDecision::Refusal why) const {
    AdmissionDecision d;
    d.kind = AdmissionDecision::Kind::refused;
    d.refusal = why;
    d.retry_after = std::max(std::chrono::ceil<std::chrono::seconds>(limits_.retry_after),
                             std::chrono::seconds(1));
    return d;
  }

  AdmissionDecision queued(const Node& n, uint64_t position, TimePoint now) const {
    AdmissionDecision d;
    d.kind = AdmissionDecision::Kind::queued;
    d.ticket = n.ticket;
    d.position = position;
    d.estimated_wait = estimated_wait(position, now);
    const auto cap = std::max(std::chrono::ceil<std::chrono::seconds>(limits_.retry_after),
                              std::chrono::seconds(1));
    d.retry_after = std::clamp(d.estimated_wait.value_or(cap), std::chrono::seconds(1), cap);
    return d;
  }

  static std::vector<AdmissionGroupCount> counts(const GroupTable& table, double mean_bps) {
    std::vector<AdmissionGroupCount> out;
    for (const Group& g : table.all()) {
      if (g.traffic.viewers == 0) continue;
      out.push_back({g.name, g.traffic.viewers, g.traffic.declared_mbps(mean_bps)});
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
  }

  AdmissionLimits limits_;
  bool emulation_ = false;
  TimePoint last_now_;

  StringMap<Node> viewers_;          // node-based: Node addresses stay valid across rehashing
  StringMap<AddressUse> addresses_;  // addresses with viewers counted against them
  StringMap<AccountUse> accounts_;   // accounts with streams counted against them
  NodeList active_;                  // admitted viewers, least recently refreshed first
  NodeList queued_;                  // waiting viewers, least recently renewed first
  TicketQueue queue_;                // waiting viewers in ticket order
  uint64_t offers_ = 0;              // queue positions 1..offers_ hold a reserved slot
  double reserved_mbps_ = 0;         // traffic reserved with those slots
  TimePoint lapse_check_at_;         // no reservation lapses before this
  uint64_t next_ticket_ = 1;

  GroupTable channels_;
  GroupTable caches_;
  Traffic all_;
  Traffic on_caches_;
  double correction_ = 1;
  std::optional<double> measured_mbps_;
  TurnoverMeter turnover_;
  AdmissionCounters counters_;
};

AdmissionPolicy::AdmissionPolicy(const AdmissionLimits& limits)
    : impl_(std::make_unique<Impl>(limits)) {}

AdmissionPolicy::~AdmissionPolicy() = default;

AdmissionDecision AdmissionPolicy::request(ViewerKey viewer, const StreamInfo& stream,
                                           TimePoint now, const ViewerSource& from) {
  return impl_->handle(viewer, {stream.channel, stream.cache, saturate_bps(stream.bandwidth_bps)},
                       now, from);
}

AdmissionDecision AdmissionPolicy::check(ViewerKey viewer, std::string_view channel, TimePoint now,
                                         const ViewerSource& from) {
  StreamUpdate update;
  if (!channel.empty()) update.channel = channel;
  return impl_->handle(viewer, update, now, from);
}

void AdmissionPolicy::expire(TimePoint now) {
  impl_->expire(now);
}

bool AdmissionPolicy::release(ViewerKey viewer, TimePoint now) {
  return impl_->release(viewer, now);
}

void AdmissionPolicy::set_limits(const AdmissionLimits& limits, TimePoint now) {
  impl_->set_limits(limits, now);
}

void AdmissionPolicy::set_emulation(bool on, TimePoint now) {
  impl_->set_emulation(on, now);
}

void AdmissionPolicy::set_measured_traffic_mbps(std::optional<double> cache_egress_mbps,
                                                TimePoint now) {
  impl_->set_measured(cache_egress_mbps, now);
}

AdmissionStatus AdmissionPolicy::status(TimePoint now) {
  return impl_->status(now);
}

}  // namespace admission
