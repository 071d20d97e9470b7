// Progress lines when the output is not a terminal (logs, CI).
#include <gtest/gtest.h>

#include <cstdio>
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

}  // namespace
}  // namespace r1
