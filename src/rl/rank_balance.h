// Data-parallel GRPO: which rank trains each rollout. Ranks generate the rollouts of their own
// prompts, so one rank can hold most of the long reasoning completions of a step while another
// holds short answers, and the fast rank waits at the gradient all-reduce. Pooling the rollouts
// and dealing them out by cost evens the ranks' training passes (verl's balance_batch does the
// same); the update does not change, since the loss is a sum over rollouts with global normalisers.
#pragma once
#include <cstdint>
#include <vector>

namespace r1 {

// The rank (0..ranks-1) of each item, given its cost (its tokens; 0 for a rollout that is not
// trained): longest first, each to the rank with the least cost so far (fewest items on a tie, then
// the lowest rank). Every rank computes the same answer from the same costs. The largest load is
// at most the mean load plus the largest single cost.
std::vector<int> balance_ranks(const std::vector<int64_t>& costs, int ranks);

}  // namespace r1
