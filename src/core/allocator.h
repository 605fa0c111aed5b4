// Giving freed memory back to the system. The servers link mimalloc (CMakeLists.txt,
// BALANCER_ALLOCATOR), which returns a thread's free pages only when that thread allocates or
// frees again: after a burst of connections a loop that then idles kept it all (a cache node
// stayed at 38 MB after 12,000 TLS connections had come and gone, 17 MB before them).
#pragma once

namespace core {

// Returns the calling thread's free memory to the system: mimalloc's mi_collect when the
// process runs on mimalloc (found at run time, so the libraries need not know which
// allocator a binary links), glibc's malloc_trim otherwise (nothing under a sanitizer, whose
// runtime owns the heap). Costs a walk of the thread's
// heap (well under a millisecond after a burst): call it when much was freed, not per request.
// Any thread.
void release_free_memory();

}  // namespace core
