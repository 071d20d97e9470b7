// The one file compiled with the checkout's absolute paths: every other test source stays the same
// in any clone, so a fresh clone (CI) finds them in ccache.
#include "test_data_dir.h"

#include <cstdlib>

namespace r1::testing {

std::string test_data() {
  const char* env = std::getenv("R1_TEST_DATA");
  return env ? env : R1_BUILD_DATA_DIR;
}

std::string source_test_data() { return R1_TEST_DATA_DIR; }

}  // namespace r1::testing
