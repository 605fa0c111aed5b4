#include "core/allocator.h"

#include <dlfcn.h>
#include <malloc.h>

namespace core {
namespace {

using CollectFn = void (*)(bool force);

// mi_collect when mimalloc is linked into the process (the servers), null otherwise (tests,
// the sanitizer builds with the system allocator).
CollectFn mimalloc_collect() {
  static const CollectFn collect = reinterpret_cast<CollectFn>(dlsym(RTLD_DEFAULT, "mi_collect"));
  return collect;
}

// A sanitizer's runtime owns the heap: glibc's arenas hold nothing of ours, and walking them
// from a loop thread crashed under ThreadSanitizer (SEGV in mtrim, seen in CI).
constexpr bool kSanitizerOwnsHeap =
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    true;
#else
    false;
#endif
#else
    false;
#endif

}  // namespace

void release_free_memory() {
  if (CollectFn collect = mimalloc_collect()) {
    // force: the thread's abandoned and cached segments go back too, not only empty pages.
    collect(true);
    return;
  }
  if (!kSanitizerOwnsHeap) malloc_trim(0);
}

}  // namespace core
