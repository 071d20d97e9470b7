#include "util/memory.h"

#include <malloc.h>

namespace r1 {

void keep_freed_memory_in_process() {
  mallopt(M_MMAP_MAX, 0);              // large blocks come from the heap, which is reused
  // and is never handed back to the kernel (glibc reads the int as size_t: -1 = no limit).
  mallopt(M_TRIM_THRESHOLD, -1);
}

}  // namespace r1
