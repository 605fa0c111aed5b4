#include "balancer/unsent_replies.h"

namespace balancer {

UnsentReplies::UnsentReplies(std::atomic<size_t>& process_total)
    : ledger_(std::make_shared<Ledger>(Ledger{process_total, {}})) {}

UnsentReplies::Room UnsentReplies::room_for(const std::string& address, size_t budget,
                                            size_t address_share) const {
  if (ledger_->process_total.load(std::memory_order_relaxed) >= budget) return Room::process_full;
  if (held_by(address) >= address_share) return Room::address_full;
  return Room::fits;
}

size_t UnsentReplies::held_by(const std::string& address) const {
  auto it = ledger_->by_address.find(address);
  return it == ledger_->by_address.end() ? 0 : it->second;
}

namespace {

// A reply that counts itself down when the last reference goes (make_shared keeps the
// derived type's destructor).
template <typename Ledger>
struct CountedReply : UnsentReplies::Reply {
  CountedReply(std::string text, std::shared_ptr<Ledger> owner, std::string from)
      : Reply{std::move(text)}, ledger(std::move(owner)), address(std::move(from)) {
    ledger->process_total.fetch_add(body.size(), std::memory_order_relaxed);
    ledger->by_address[address] += body.size();
  }
  ~CountedReply() {
    ledger->process_total.fetch_sub(body.size(), std::memory_order_relaxed);
    auto it = ledger->by_address.find(address);
    if (it != ledger->by_address.end() && (it->second -= body.size()) == 0)
      ledger->by_address.erase(it);
  }
  CountedReply(const CountedReply&) = delete;
  CountedReply& operator=(const CountedReply&) = delete;
  std::shared_ptr<Ledger> ledger;
  std::string address;
};

}  // namespace

std::shared_ptr<const UnsentReplies::Reply> UnsentReplies::hold(std::string body,
                                                                const std::string& address) {
  return std::make_shared<const CountedReply<Ledger>>(std::move(body), ledger_, address);
}

}  // namespace balancer
