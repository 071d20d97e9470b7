#include "util/parallel_rows.h"

#include <ATen/Parallel.h>

namespace r1 {

void parallel_rows(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  at::parallel_for(begin, end, grain, body);
}

}  // namespace r1
