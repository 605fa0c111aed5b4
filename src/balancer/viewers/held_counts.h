// Amounts held per key, each counted from hold() until the token it returns is released: bytes
// of unwritten playlist replies per client address (unsent_replies.h), blocked playlist
// reloads per viewer. One per loop: its loop's thread only (tokens are released there too).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>

namespace balancer {

class HeldCounts {
 public:
  HeldCounts() : counts_(std::make_shared<Counts>()) {}
  HeldCounts(const HeldCounts&) = delete;
  HeldCounts& operator=(const HeldCounts&) = delete;

  // What `key` holds now (0 when nothing).
  size_t held_by(const std::string& key) const {
    auto it = counts_->by_key.find(key);
    return it == counts_->by_key.end() ? 0 : it->second;
  }
  // What every key holds together.
  size_t total() const { return counts_->total; }

  // Counts `amount` for `key` until the token is released; a token may outlive this object.
  class Token {
   public:
    Token(const Token&) = delete;
    Token& operator=(const Token&) = delete;
    ~Token() {
      counts_->total -= amount_;
      auto it = counts_->by_key.find(key_);
      if (it != counts_->by_key.end() && (it->second -= amount_) == 0) counts_->by_key.erase(it);
    }

   private:
    friend class HeldCounts;
    struct Counts {
      std::unordered_map<std::string, size_t> by_key;  // no zero entries
      size_t total = 0;
    };
    Token(std::shared_ptr<Counts> counts, std::string key, size_t amount)
        : counts_(std::move(counts)), key_(std::move(key)), amount_(amount) {
      counts_->by_key[key_] += amount_;
      counts_->total += amount_;
    }
    std::shared_ptr<Counts> counts_;
    std::string key_;
    size_t amount_;
  };
  std::unique_ptr<Token> hold(const std::string& key, size_t amount) {
    return std::unique_ptr<Token>(new Token(counts_, key, amount));
  }
  // The same token made in place (a member of what holds it: no allocation of its own).
  Token hold_here(const std::string& key, size_t amount) { return Token(counts_, key, amount); }

 private:
  using Counts = Token::Counts;
  std::shared_ptr<Counts> counts_;
};

}  // namespace balancer
