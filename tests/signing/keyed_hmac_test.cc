// hmac_sha256: RFC 4231's vectors, keys taken in turns and past the contexts a thread keeps,
// and threads of their own.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "signing/keyed_hmac.h"

namespace {

std::string hex(const unsigned char (&mac)[signing::kHmacSha256Bytes]) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : mac) out += std::string{digits[c >> 4], digits[c & 15]};
  return out;
}

std::string hex_hmac(const std::string& key, const std::string& message) {
  unsigned char mac[signing::kHmacSha256Bytes];
  REQUIRE(signing::hmac_sha256(key, message, mac));
  return hex(mac);
}

// RFC 4231, test cases 2 and 6 (a key longer than the hash's block).
const std::string kJefe = "Jefe";
const std::string kJefeMessage = "what do ya want for nothing?";
const std::string kJefeMac = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
const std::string kLongKey(131, '\xaa');
const std::string kLongKeyMessage = "Test Using Larger Than Block-Size Key - Hash Key First";
const std::string kLongKeyMac = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";

}  // namespace

TEST_CASE("hmac_sha256 gives RFC 4231's results, keys in turns and past the kept contexts") {
  for (int round = 0; round < 3; ++round) {
    CHECK(hex_hmac(kJefe, kJefeMessage) == kJefeMac);
    CHECK(hex_hmac(kLongKey, kLongKeyMessage) == kLongKeyMac);
  }
  // Twenty other keys: the contexts kept for the first two are dropped and made again.
  for (int i = 0; i < 20; ++i) CHECK(hex_hmac("key-" + std::to_string(i), "m").size() == 64);
  CHECK(hex_hmac(kJefe, kJefeMessage) == kJefeMac);
  CHECK(hex_hmac(kLongKey, kLongKeyMessage) == kLongKeyMac);
  // The same message under a key and a prefix of it differ (the key is not truncated).
  CHECK(hex_hmac("Jef", kJefeMessage) != kJefeMac);
}

TEST_CASE("hmac_sha256 from several threads at once") {
  std::vector<std::thread> threads;
  std::vector<int> right(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &right] {
      for (int i = 0; i < 500; ++i) {
        unsigned char out[signing::kHmacSha256Bytes];
        const std::string& key = (i + t) % 2 ? kJefe : kLongKey;
        const std::string& message = (i + t) % 2 ? kJefeMessage : kLongKeyMessage;
        // doctest's checks are the main thread's: counted here, checked after.
        if (signing::hmac_sha256(key, message, out))
          right[t] += hex(out) == ((i + t) % 2 ? kJefeMac : kLongKeyMac);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < 4; ++t) CHECK(right[t] == 500);
}
