// Byte-level BPE's text plumbing: the GPT-2 byte <-> printable-character map, UTF-8 helpers,
// and NFC normalisation (utf8proc). Torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace r1 {

// The UTF-8 encoding of the printable character GPT-2's bytes_to_unicode() assigns to `b`
// (0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF map to themselves; the other 68 bytes to U+0100 + n).
const std::string& byte_to_unicode(uint8_t b);
// Maps every byte of `bytes` and appends the characters to `out`.
void append_byte_level(std::string_view bytes, std::string& out);
// The inverse for one code point: the byte, or -1 when `cp` is not one of the 256 characters.
int unicode_to_byte(uint32_t cp);

// Decodes the code point at text[i]; advances i. Invalid bytes decode as U+FFFD, 1 byte each.
uint32_t next_code_point(std::string_view text, size_t& i);
void append_utf8(uint32_t cp, std::string& out);
// Length of the longest prefix of `bytes` that is complete UTF-8 (incomplete tail held back).
size_t complete_utf8_prefix(std::string_view bytes);
// Replaces invalid UTF-8 with U+FFFD, like Rust's String::from_utf8_lossy.
std::string utf8_lossy(std::string_view bytes);

std::string nfc(std::string_view text);

}  // namespace r1
