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

}  // namespace

void release_free_memory() {
  if (CollectFn collect = mimalloc_collect()) {
    // force: the thread's abandoned and cached segments go back too, not only empty pages.
    collect(true);
    return;
  }
  malloc_trim(0);
}

}  // namespace core
