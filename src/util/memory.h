// Process-wide allocator settings for tensor workloads.
#pragma once

namespace r1 {

// glibc serves allocations above 32 MB with fresh mmap()s and unmaps them on free, so every
// training step paid for zeroing new pages again (clear_page: 22% of a bench-m training step,
// bench/README). Keeping freed memory in the heap makes steps reuse it. Call once, early in main().
void keep_freed_memory_in_process();

}  // namespace r1
