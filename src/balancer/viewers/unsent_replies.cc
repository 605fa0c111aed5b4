#include "balancer/viewers/unsent_replies.h"

namespace balancer {
namespace {

// A reply that counts itself down when the last reference goes (make_shared keeps the
// derived type's destructor).
struct CountedReply : UnsentReplies::Reply {
  CountedReply(std::string text, std::atomic<size_t>& total, HeldCounts& counts,
               const std::string& address)
      : Reply{std::move(text)},
        process_total(total),
        by_address(counts.hold_here(address, body.size())) {
    process_total.fetch_add(body.size(), std::memory_order_relaxed);
  }
  ~CountedReply() { process_total.fetch_sub(body.size(), std::memory_order_relaxed); }
  CountedReply(const CountedReply&) = delete;
  CountedReply& operator=(const CountedReply&) = delete;
  std::atomic<size_t>& process_total;
  HeldCounts::Token by_address;  // in the reply's own allocation
};

}  // namespace

UnsentReplies::Room UnsentReplies::room_for(const std::string& address, size_t size,
                                            const Limits& limits) const {
  if (process_total_.load(std::memory_order_relaxed) >= limits.process) return Room::process_full;
  const size_t held = held_by(address);
  if (held >= limits.address_share) return Room::address_full;
  const size_t loop_held = by_address_.total();
  if (loop_held == 0) return Room::fits;  // a reply larger than the budget is still served
  const size_t free = limits.loop > loop_held ? limits.loop - loop_held : 0;
  if (held + size <= free / 2) return Room::fits;
  return held > 0 ? Room::address_full : Room::process_full;
}

std::shared_ptr<const UnsentReplies::Reply> UnsentReplies::hold(std::string body,
                                                                const std::string& address) {
  return std::make_shared<const CountedReply>(std::move(body), process_total_, by_address_,
                                              address);
}

}  // namespace balancer
