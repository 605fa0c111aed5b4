// The shared state behind a store client (PgClient, RedisClient): made and started with the
// client, shut down when the client goes. Callbacks on the loop hold weak references to it, so
// it may outlive the client briefly, doing nothing once shut down.
#pragma once

#include <memory>
#include <utility>

namespace stores {

// `Impl` has start() and shutdown(). Construct and destroy it where `Impl` is complete (the
// client's .cc file).
template <class Impl>
class StartedImpl {
 public:
  template <class... Args>
  explicit StartedImpl(Args&&... args)
      : impl_(std::make_shared<Impl>(std::forward<Args>(args)...)) {
    impl_->start();
  }
  ~StartedImpl() { impl_->shutdown(); }
  StartedImpl(const StartedImpl&) = delete;
  StartedImpl& operator=(const StartedImpl&) = delete;

  Impl* operator->() const { return impl_.get(); }

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace stores
