// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Base64 (RFC 4648 §4, with padding) for the sealed copy's body, the hot loop of a large
/// delivery after AES itself. Where the processor has AVX2, 24 octets at a time become 32
/// characters in a few vector instructions (the method of Muła and Lemire, "Faster Base64
/// Encoding and Decoding Using AVX2 Instructions", 2018); elsewhere each 12 bits of input take
/// one lookup in a table of character pairs. Debian packages no vectorised encoder, and
/// OpenSSL's EVP_EncodeBlock looks up each character on its own, at a sixth of the speed. The
/// input is ciphertext, so a table indexed by it reveals nothing through timing.

#include <cstddef>
#include <string_view>

namespace mailseal::seal::smime {

/// The length of the encoding of `size` octets.
constexpr std::size_t base64_length(std::size_t size) {
    return (size + 2) / 3 * 4;
}

/// Writes the encoding of `in` to `out`, which must have room for base64_length(in.size())
/// characters (no NUL is written). Returns the number written.
std::size_t encode_base64(std::string_view in, char* out);

/// The same with the table alone, whatever the processor: what encode_base64() falls back to,
/// kept callable so tests compare the two paths.
std::size_t encode_base64_portable(std::string_view in, char* out);

/// Writes the encoding of `in` as lines of `line_octets` octets each (at least 1; the last one
/// may be shorter), every line followed by `line_end`; `out` must have room for that many lines of
/// base64_length(line_octets) + line_end.size() characters. Returns the number written. With a
/// multiple of 3 no line but the last holds padding, and on AVX2 every whole line is encoded in
/// vector steps alone.
std::size_t encode_base64_lines(std::string_view in, std::size_t line_octets,
                                std::string_view line_end, char* out);

/// Whether encode_base64() takes the AVX2 path on this processor.
bool base64_vectorised();

} // namespace mailseal::seal::smime
