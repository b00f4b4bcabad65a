// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include <mailseal/seal/smime/base64.hpp>

#if defined(__x86_64__)
#include <immintrin.h>
#define MAILSEAL_BASE64_AVX2 1
#endif

namespace mailseal::seal::smime {
namespace {

constexpr std::string_view alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The two characters for every 12-bit value, first character first.
constexpr auto pairs = [] {
    std::array<char, 2 * 4096> table{};
    for (std::size_t i = 0; i < 4096; ++i) {
        table[2 * i] = alphabet[i >> 6];
        table[2 * i + 1] = alphabet[i & 63];
    }
    return table;
}();

#ifdef MAILSEAL_BASE64_AVX2

/// Octets a vector step consumes and reads: its 24, plus 4 beyond them that it ignores.
constexpr std::size_t vector_step = 24;
constexpr std::size_t vector_reach = 28;

/// Encodes 24 octets at `in` (reading 28) into 32 characters at `out`.
__attribute__((target("avx2"), always_inline)) inline void encode_24(const unsigned char* in,
                                                                     char* out) {
    // Octets 0..15 in the low lane, 12..27 in the high one: each lane holds four 3-octet
    // groups from its start.
    const __m256i loaded = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 12)), 1);
    // Each group a b c becomes the 32-bit word with octets b a c b (little-endian), which puts
    // every 6-bit field where one multiplication can move it.
    const __m256i spread = _mm256_shuffle_epi8(
        loaded, _mm256_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10, //
                                 1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10));
    // Fields 1 and 3 (of 0..3) shifted down by the high half of a 16-bit product, fields 0
    // and 2 up by the low half: one 6-bit value per octet.
    const __m256i high = _mm256_mulhi_epu16(_mm256_and_si256(spread, _mm256_set1_epi32(0x0fc0fc00)),
                                            _mm256_set1_epi32(0x04000040));
    const __m256i low = _mm256_mullo_epi16(_mm256_and_si256(spread, _mm256_set1_epi32(0x003f03f0)),
                                           _mm256_set1_epi32(0x01000010));
    const __m256i values = _mm256_or_si256(high, low);
    // Value to character by adding an offset picked by range: 0..25 +65 ('A'), 26..51 +71
    // ('a'), 52..61 -4 ('0'), 62 -19 ('+'), 63 -16 ('/'). Saturating subtraction of 51 gives
    // 0 for the first two ranges and 1..12 for the rest; one more for all but the first.
    __m256i index = _mm256_subs_epu8(values, _mm256_set1_epi8(51));
    index = _mm256_sub_epi8(index, _mm256_cmpgt_epi8(values, _mm256_set1_epi8(25)));
    const __m256i offsets =
        _mm256_setr_epi8(65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0, //
                         65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0);
    const __m256i characters = _mm256_add_epi8(values, _mm256_shuffle_epi8(offsets, index));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), characters);
}

/// The vector steps, while 28 octets remain to be read; returns the octets consumed.
__attribute__((target("avx2"))) std::size_t encode_vectorised(const unsigned char* in,
                                                              std::size_t size, char* out) {
    std::size_t done = 0;
    while (size - done >= vector_reach) {
        encode_24(in + done, out + done / 3 * 4);
        done += vector_step;
    }
    return done;
}

/// Encodes whole lines of `line_octets` (a multiple of 3, at least 24) while the line and the 4
/// octets after it can be read: vector steps at every 24 octets, and a last one that ends with
/// the line, overlapping the one before it with the same characters. Returns the octets
/// consumed; `out` advances past each line and its `line_end`.
__attribute__((target("avx2"))) std::size_t
encode_lines_vectorised(const unsigned char* in, std::size_t size, std::size_t line_octets,
                        std::string_view line_end, char*& out) {
    const std::size_t line_chars = line_octets / 3 * 4;
    std::size_t done = 0;
    while (size - done >= line_octets + (vector_reach - vector_step)) {
        const unsigned char* line = in + done;
        std::size_t at = 0;
        for (; at + vector_step <= line_octets; at += vector_step) {
            encode_24(line + at, out + at / 3 * 4);
        }
        if (at < line_octets) {
            const std::size_t last = line_octets - vector_step;
            encode_24(line + last, out + last / 3 * 4);
        }
        out += line_chars;
        std::memcpy(out, line_end.data(), line_end.size());
        out += line_end.size();
        done += line_octets;
    }
    return done;
}

#endif

bool detect_avx2() {
#ifdef MAILSEAL_BASE64_AVX2
    // This runs during static initialisation, possibly before the compiler's own.
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
#else
    return false;
#endif
}

const bool use_avx2 = detect_avx2();

} // namespace

bool base64_vectorised() {
    return use_avx2;
}

std::size_t encode_base64_portable(std::string_view in, char* out) {
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

std::size_t encode_base64(std::string_view in, char* out) {
#ifdef MAILSEAL_BASE64_AVX2
    if (use_avx2) {
        const std::size_t done =
            encode_vectorised(reinterpret_cast<const unsigned char*>(in.data()), in.size(), out);
        const std::size_t written = done / 3 * 4;
        return written + encode_base64_portable(in.substr(done), out + written);
    }
#endif
    return encode_base64_portable(in, out);
}

std::size_t encode_base64_lines(std::string_view in, std::size_t line_octets,
                                std::string_view line_end, char* out) {
    char* at = out;
#ifdef MAILSEAL_BASE64_AVX2
    if (use_avx2 && line_octets % 3 == 0 && line_octets >= vector_step) {
        in.remove_prefix(encode_lines_vectorised(reinterpret_cast<const unsigned char*>(in.data()),
                                                 in.size(), line_octets, line_end, at));
    }
#endif
    // A line of no octets would never end the loop; it takes one.
    const std::size_t line = std::max<std::size_t>(line_octets, 1);
    while (!in.empty()) {
        const std::size_t n = std::min(line, in.size());
        at += encode_base64(in.substr(0, n), at);
        std::memcpy(at, line_end.data(), line_end.size());
        at += line_end.size();
        in.remove_prefix(n);
    }
    return static_cast<std::size_t>(at - out);
}

} // namespace mailseal::seal::smime
