// Dealing a step's rollouts out to data-parallel ranks by cost (src/rl/rank_balance.h): loads
// against the best partition found by brute force, and the split GRPO had before (each rank its
// own prompts' rollouts).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "rl/rank_balance.h"

namespace r1 {
namespace {

std::vector<int64_t> loads(const std::vector<int64_t>& costs, const std::vector<int>& owner, int ranks) {
  std::vector<int64_t> load(ranks, 0);
  for (size_t i = 0; i < costs.size(); ++i) load.at(owner.at(i)) += costs[i];
  return load;
}

// The smallest possible largest load, trying every assignment (small n only).
int64_t best_makespan(const std::vector<int64_t>& costs, int ranks) {
  int64_t best = std::numeric_limits<int64_t>::max();
  std::vector<int> owner(costs.size(), 0);
  while (true) {
    const auto l = loads(costs, owner, ranks);
    best = std::min(best, *std::max_element(l.begin(), l.end()));
    size_t i = 0;
    while (i < owner.size() && ++owner[i] == ranks) owner[i++] = 0;
    if (i == owner.size()) return best;
  }
}

TEST(RankBalance, LongAnswersOfOnePromptAreSplitAcrossRanks) {
  // Rank 0 generated two 80-token reasoning answers and a short one, rank 1 three short ones: as
  // generated the ranks train 180 and 60 tokens; dealt out, 120 each.
  const std::vector<int64_t> costs = {80, 80, 20, 20, 20, 20};
  const auto owner = balance_ranks(costs, 2);
  EXPECT_EQ(loads(costs, owner, 2), (std::vector<int64_t>{120, 120}));
}

TEST(RankBalance, NearTheBestPartitionAndTheSameOnEveryCall) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int ranks = 2 + trial % 3;
    std::vector<int64_t> costs(1 + rng() % 8);
    for (auto& c : costs) c = rng() % 4 == 0 ? 0 : 1 + rng() % 100;  // some rollouts not trained
    const auto owner = balance_ranks(costs, ranks);
    ASSERT_EQ(owner, balance_ranks(costs, ranks));
    const auto l = loads(costs, owner, ranks);
    const int64_t largest = *std::max_element(l.begin(), l.end());
    const int64_t total = std::accumulate(costs.begin(), costs.end(), int64_t{0});
    const int64_t max_cost = *std::max_element(costs.begin(), costs.end());
    EXPECT_LE(largest * ranks, total + ranks * max_cost);
    // Longest-first greedy is within 4/3 - 1/(3 ranks) of the optimum (Graham 1969).
    EXPECT_LE(3 * ranks * largest, (4 * ranks - 1) * best_makespan(costs, ranks)) << "trial " << trial;
  }
}

TEST(RankBalance, UntrainedRolloutsAreSpreadByCount) {
  const auto owner = balance_ranks(std::vector<int64_t>(6, 0), 3);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(std::count(owner.begin(), owner.end(), r), 2);
  EXPECT_THROW(balance_ranks({1}, 0), std::exception);
}

}  // namespace
}  // namespace r1
