// Progress lines when the output is not a terminal (logs, CI).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <string>

#include "util/progress.h"

namespace r1 {
namespace {

std::string run_bar(double interval) {
  std::FILE* f = std::tmpfile();
  {
    ProgressBar bar(f, interval);
    bar.update("reading", 1, 10, " MB");
    bar.update("reading", 5, 10, " MB");
    bar.update("merging", 3, 0, " merges");
  }
  std::rewind(f);
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, f)) out += buf;
  std::fclose(f);
  return out;
}

TEST(ProgressBar, PlainLinesNamingStageAndCounts) {
  const std::string out = run_bar(1000.0);  // long interval: only stage starts and ends print
  EXPECT_NE(out.find("reading: 1/10 MB"), std::string::npos) << out;
  EXPECT_NE(out.find("reading: 5/10 MB"), std::string::npos) << out;  // the stage's final state
  EXPECT_NE(out.find("merging: 3 merges"), std::string::npos) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << "no terminal control codes in a log";
}

TEST(ProgressBar, AResumedStageEstimatesFromItsOwnSteps) {
  std::FILE* f = std::tmpfile();
  {
    ProgressBar bar(f, 0.0);  // a line for every update
    bar.update("train", 500, 1000, " steps");  // resumed at step 500: no rate yet, no ETA
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1100)) {
    }
    bar.update("train", 501, 1000, " steps");  // one step in ~1.1 s: 499 more take minutes
  }
  std::rewind(f);
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, f)) out += buf;
  std::fclose(f);
  EXPECT_EQ(out.find("500/1000 steps (0s, ETA"), std::string::npos) << out;
  // 499 steps at >= 1.1 s each: minutes or hours. Counting the 500 earlier steps as this
  // process's work would give about a second.
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(501/1000 steps \(\d+s, ETA \d+[mh]\d+)"))) << out;
}

}  // namespace
}  // namespace r1
