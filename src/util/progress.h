// Progress display for long jobs: a bar with rate and ETA on a terminal, a plain line every few
// seconds otherwise (logs, CI). The library reports (stage, done, total); the CLI renders.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace r1 {

class ProgressBar {
 public:
  // `out` is usually stderr; a terminal gets the redrawn bar.
  explicit ProgressBar(std::FILE* out = stderr, double line_interval_s = 5.0);
  ~ProgressBar();
  // Reports progress of `stage` (a new stage restarts the clock). total 0 = unknown.
  void update(const std::string& stage, uint64_t done, uint64_t total, const std::string& unit = "");
  void finish();

 private:
  void render(bool final);
  std::FILE* out_;
  bool tty_;
  double interval_;
  std::string stage_, unit_;
  uint64_t done_ = 0, total_ = 0;
  uint64_t first_done_ = 0;  // the count when the stage started here (a resumed run starts mid-way)
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool drawn_ = false;
  uint64_t printed_done_ = UINT64_MAX;  // plain lines: the last count printed
};

}  // namespace r1
