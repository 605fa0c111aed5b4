#include "api/receipts.h"

#include <openssl/sha.h>

namespace api {

namespace {

class DemoReceiptVerifier final : public ReceiptVerifier {
 public:
  explicit DemoReceiptVerifier(std::function<bool()> enabled) : enabled_(std::move(enabled)) {}

  void verify(core::EventLoop& back, const Product&, uint64_t, std::string receipt,
              std::function<void(core::Result<std::string>)> done) override {
    core::Result<std::string> result =
        core::Error{"receipt_rejected",
                    "No payment provider is configured on this server: receipts are not accepted."};
    if (enabled_()) {
      unsigned char digest[SHA256_DIGEST_LENGTH];
      SHA256(reinterpret_cast<const unsigned char*>(receipt.data()), receipt.size(), digest);
      static constexpr char kHex[] = "0123456789abcdef";
      std::string ref = "demo-";
      for (int i = 0; i < 8; ++i) {
        ref += kHex[digest[i] >> 4];
        ref += kHex[digest[i] & 15];
      }
      result = std::move(ref);
    }
    back.post([done = std::move(done), result = std::move(result)]() mutable {
      done(std::move(result));
    });
  }

 private:
  std::function<bool()> enabled_;
};

}  // namespace

std::unique_ptr<ReceiptVerifier> make_demo_receipt_verifier(std::function<bool()> enabled) {
  return std::make_unique<DemoReceiptVerifier>(std::move(enabled));
}

}  // namespace api
