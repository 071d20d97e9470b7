#include "util/progress.h"

#include <unistd.h>

#include <algorithm>

namespace r1 {
namespace {

std::string format_duration(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, int(s) % 3600 / 60);
  return buf;
}

}  // namespace

ProgressBar::ProgressBar(std::FILE* out, double line_interval_s)
    : out_(out), tty_(::isatty(::fileno(out)) != 0), interval_(line_interval_s) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(const std::string& stage, uint64_t done, uint64_t total, const std::string& unit) {
  const auto now = std::chrono::steady_clock::now();
  if (stage != stage_) {
    if (drawn_ && (tty_ || printed_done_ != done_)) render(true);
    stage_ = stage;
    unit_ = unit;
    start_ = now;
    first_done_ = done;
    last_draw_ = now - std::chrono::hours(1);
    drawn_ = false;
  }
  done_ = done;
  total_ = total;
  unit_ = unit;
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since >= (tty_ ? 0.1 : interval_)) {
    last_draw_ = now;
    render(false);
  }
}

void ProgressBar::finish() {
  // A plain-line log that already shows the final count needs no repeat.
  if ((drawn_ || !stage_.empty()) && (tty_ || printed_done_ != done_)) render(true);
  stage_.clear();
  drawn_ = false;
}

void ProgressBar::render(bool final) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  // The rate of this process's own work: a resumed run's earlier steps took no time here.
  const double rate = elapsed > 0 && done_ > first_done_ ? (done_ - first_done_) / elapsed : 0;
  std::string eta;
  if (total_ > 0 && rate > 0 && done_ < total_) eta = ", ETA " + format_duration((total_ - done_) / rate);
  char counts[96];
  if (total_ > 0) std::snprintf(counts, sizeof counts, "%llu/%llu%s", (unsigned long long)done_, (unsigned long long)total_, unit_.c_str());
  else std::snprintf(counts, sizeof counts, "%llu%s", (unsigned long long)done_, unit_.c_str());
  if (tty_) {
    std::string bar;
    if (total_ > 0) {
      const int width = 30, filled = static_cast<int>(std::min(1.0, double(done_) / total_) * width);
      bar.reserve(width + 3);
      bar += '[';
      bar.append(static_cast<size_t>(filled), '#');
      bar.append(static_cast<size_t>(width - filled), '.');
      bar += "] ";
    }
    std::fprintf(out_, "\r\033[K%s %s%s (%s%s)%s", stage_.c_str(), bar.c_str(), counts,
                 format_duration(elapsed).c_str(), eta.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(out_, "%s: %s (%s%s)\n", stage_.c_str(), counts, format_duration(elapsed).c_str(), eta.c_str());
  }
  std::fflush(out_);
  printed_done_ = done_;
  drawn_ = !final;
}

}  // namespace r1
