// Payment receipts. There is no payment provider on this network: a purchase's
// receipt goes through a ReceiptVerifier, and the shipped one accepts receipts
// only when api.demo_payments is on (it says so at start-up and in docs/api.md).
// A real provider (Google Play, App Store) implements the same interface.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "api/products.h"
#include "core/event_loop.h"
#include "core/result.h"

namespace api {

class ReceiptVerifier {
 public:
  virtual ~ReceiptVerifier() = default;
  // Loop thread. `done` runs later on `back`'s thread (never inline) with the
  // provider's reference for the payment (stored with the purchase, never the
  // receipt itself), or the error "receipt_rejected" saying why.
  virtual void verify(core::EventLoop& back, const Product& product, uint64_t user_id,
                      std::string receipt, std::function<void(core::Result<std::string>)> done) = 0;
};

// The demo verifier: while `enabled()` is true every receipt is accepted and
// referenced as "demo-" + 16 hex digits of its SHA-256; otherwise every receipt
// is rejected. `enabled` is asked on each call (a reload can switch it).
std::unique_ptr<ReceiptVerifier> make_demo_receipt_verifier(std::function<bool()> enabled);

}  // namespace api
