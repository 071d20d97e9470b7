// Splits a streamed R1-style answer into reasoning_content (inside <think>...</think>) and
// content (after it), as DeepSeek's API does. Deltas arrive in arbitrary pieces, so a tag split
// across two deltas is held back until it is complete. Torch-free.
#pragma once
#include <string>

namespace r1 {

class ThinkSplitter {
 public:
  // in_think: the prompt already opened <think> (the deepseek-r1 generation prompt ends with it).
  explicit ThinkSplitter(bool in_think = false) : in_think_(in_think), at_start_(!in_think) {}
  struct Parts {
    std::string reasoning, content;
  };
  Parts push(const std::string& delta);
  Parts finish();  // whatever is held back

 private:
  Parts drain(bool final);
  std::string pending_;
  bool in_think_, at_start_, after_close_ = false;
};

}  // namespace r1
