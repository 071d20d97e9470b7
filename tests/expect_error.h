// EXPECT that `f` throws r1::Error with `needle` in its message: errors must say what is wrong.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "util/error.h"

namespace r1::testing {

template <typename F>
void expect_error(F f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace r1::testing
