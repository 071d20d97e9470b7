#include "rl/rank_balance.h"

#include <algorithm>
#include <numeric>

#include "util/error.h"

namespace r1 {

std::vector<int> balance_ranks(const std::vector<int64_t>& costs, int ranks) {
  if (ranks < 1) throw Error("balance_ranks: at least one rank is required");
  std::vector<size_t> order(costs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return costs[a] > costs[b]; });
  std::vector<int64_t> load(ranks, 0), count(ranks, 0);
  std::vector<int> owner(costs.size(), 0);
  for (size_t i : order) {
    int best = 0;
    for (int r = 1; r < ranks; ++r)
      if (load[r] < load[best] || (load[r] == load[best] && count[r] < count[best])) best = r;
    owner[i] = best;
    load[best] += costs[i];
    ++count[best];
  }
  return owner;
}

}  // namespace r1
