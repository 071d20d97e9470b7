// Process-wide allocator settings for tensor workloads.
#pragma once

namespace r1 {

// glibc serves allocations above 32 MB with fresh mmap()s and unmaps them on free, so every
// training step paid for zeroing new pages again (clear_page: 22% of a bench-m training step,
// bench/README). Keeping freed memory in the heap makes steps reuse it. Call once, early in main().
void keep_freed_memory_in_process();

// Hands the heap's free pages back to the kernel now (malloc_trim): after freeing memory that will
// not be needed again, such as the float32 weights an int8 load quantised.
void return_freed_memory();

}  // namespace r1
