// Named pre-tokenization patterns (as tokenizer.json "pre_tokenizer" objects) for training.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace r1 {

const std::vector<std::string>& pattern_names();
// Throws r1::Error listing the names for an unknown one.
nlohmann::json pattern_pretokenizer(const std::string& name);

}  // namespace r1
