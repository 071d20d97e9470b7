// r1 report RUN_DIR: one self-contained HTML page (inline SVG, no network) of a run's
// metrics.jsonl and samples.jsonl, for any stage: loss, validation loss and LR for (pre)training
// and SFT; reward, accuracy, response length, KL, entropy and clip fractions for GRPO, with sample
// completions from early, middle and late steps, held-out accuracy (r1 grpo --eval-task) and chat
// checks before and after when the run has them. Torch-free.
#pragma once
#include <string>

namespace r1 {

// The HTML of the report of `run_dir` (throws r1::Error when it has no metrics.jsonl).
std::string render_run_report(const std::string& run_dir);

}  // namespace r1
