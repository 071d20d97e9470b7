// at::parallel_for for files built without -fopenmp.
//
// Why: ATen's OpenMP parallel_for is inline in its headers (`#pragma omp parallel`), so in a
// translation unit compiled without -fopenmp it silently runs the whole range on the calling
// thread. Most of r1 is compiled without it (the precompiled torch header cannot be shared with
// -fopenmp files), where such loops would run on one thread. This function's file is built with
// -fopenmp and uses libtorch's own thread pool.
#pragma once
#include <cstdint>
#include <functional>

namespace r1 {

// Calls body(chunk_begin, chunk_end) over [begin, end) split into at most at::get_num_threads()
// chunks of at least `grain` items, on libtorch's intra-op threads; the first exception thrown by
// a chunk is rethrown here.
void parallel_rows(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

}  // namespace r1
