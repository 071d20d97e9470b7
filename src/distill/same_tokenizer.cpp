#include "distill/same_tokenizer.h"

namespace r1 {
namespace {

std::string token_bytes(const Tokenizer& t, int32_t id) {
  try {
    return t.decode_bytes({id}, /*skip_special=*/false);
  } catch (const std::exception&) {
    return "<no token>";  // a gap in the id space
  }
}

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
    else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + "'";
}

}  // namespace

std::string tokenizer_difference(const Tokenizer& teacher, const Tokenizer& student) {
  if (teacher.vocab_size() != student.vocab_size())
    return "the teacher's tokenizer has " + std::to_string(teacher.vocab_size()) + " tokens, the student's " +
           std::to_string(student.vocab_size());
  for (int32_t id = 0; id < teacher.vocab_size(); ++id) {
    const std::string a = token_bytes(teacher, id), b = token_bytes(student, id);
    if (a != b) return "token " + std::to_string(id) + " is " + quoted(a) + " for the teacher but " + quoted(b) + " for the student";
  }
  return "";
}

}  // namespace r1
