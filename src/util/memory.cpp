#include "util/memory.h"

#include <malloc.h>

#include <cstdlib>

namespace r1 {

void keep_freed_memory_in_process() {
  // R1_NO_KEEP_FREED_MEMORY=1: glibc's defaults (large blocks mapped and unmapped one by one), so
  // that peak resident memory measures the peak of live tensors (bench/run_plan_check.py).
  if (std::getenv("R1_NO_KEEP_FREED_MEMORY")) return;
  mallopt(M_MMAP_MAX, 0);              // large blocks come from the heap, which is reused
  // and is never handed back to the kernel (glibc reads the int as size_t: -1 = no limit).
  mallopt(M_TRIM_THRESHOLD, -1);
}

void return_freed_memory() { malloc_trim(0); }

}  // namespace r1
