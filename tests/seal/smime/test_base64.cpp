// SPDX-License-Identifier: Apache-2.0
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <mailseal/seal/smime/base64.hpp>

namespace mailseal::seal::smime {
namespace {

/// OpenSSL's encoder, as the reference.
std::string reference(const std::string& in) {
    std::string out(base64_length(in.size()) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string encoded(const std::string& in) {
    std::string out(base64_length(in.size()) + 1, '#');
    out.resize(encode_base64(in, out.data()) + 1);
    // Nothing is written past the encoding.
    EXPECT_EQ(out.back(), '#');
    out.pop_back();
    return out;
}

std::string encoded_portably(const std::string& in) {
    std::string out(base64_length(in.size()), '#');
    out.resize(encode_base64_portable(in, out.data()));
    return out;
}

TEST(base64, rfc_4648_test_vectors) {
    EXPECT_EQ(encoded(""), "");
    EXPECT_EQ(encoded("f"), "Zg==");
    EXPECT_EQ(encoded("fo"), "Zm8=");
    EXPECT_EQ(encoded("foo"), "Zm9v");
    EXPECT_EQ(encoded("foob"), "Zm9vYg==");
    EXPECT_EQ(encoded("fooba"), "Zm9vYmE=");
    EXPECT_EQ(encoded("foobar"), "Zm9vYmFy");
}

TEST(base64, every_octet_value_in_every_position) {
    std::string all;
    for (int i = 0; i < 256 * 3; ++i) {
        all += static_cast<char>(i / 3 ^ (i % 3 == 1 ? 0xA5 : 0) ^ (i % 3 == 2 ? 0x3C : 0));
    }
    EXPECT_EQ(encoded(all), reference(all));
}

TEST(base64, random_input_of_every_length_matches_openssl) {
    std::mt19937 random(20261205);
    for (std::size_t length = 0; length <= 300; ++length) {
        std::string in(length, '\0');
        for (auto& c : in) {
            c = static_cast<char>(random());
        }
        EXPECT_EQ(encoded(in), reference(in)) << "length " << length;
        EXPECT_EQ(encoded_portably(in), reference(in)) << "length " << length;
    }
}

TEST(base64, every_six_bit_value_in_every_vector_position) {
    // A vector step makes 32 characters; in step j, character p has value (j + p) % 64, so 64
    // steps put every value in every position.
    const std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::vector<unsigned> values;
    std::string expected;
    for (unsigned j = 0; j < 64; ++j) {
        for (unsigned p = 0; p < 32; ++p) {
            values.push_back((j + p) % 64);
            expected += alphabet[(j + p) % 64];
        }
    }
    std::string in;
    for (std::size_t i = 0; i < values.size(); i += 4) {
        unsigned group = values[i] << 18 | values[i + 1] << 12 | values[i + 2] << 6 | values[i + 3];
        in += static_cast<char>(group >> 16);
        in += static_cast<char>(group >> 8);
        in += static_cast<char>(group);
    }
    EXPECT_EQ(encoded(in), expected);
    // And at every alignment of the input to the steps.
    for (std::size_t offset = 1; offset < 24; ++offset) {
        std::string text = in.substr(offset);
        EXPECT_EQ(encoded(text), reference(text)) << "offset " << offset;
    }
}

/// OpenSSL's encoding of each `line_octets` of `in`, every line followed by `line_end`.
std::string reference_lines(std::string_view in, std::size_t line_octets,
                            std::string_view line_end) {
    std::string out;
    for (std::size_t at = 0; at < in.size(); at += line_octets) {
        out += reference(std::string(in.substr(at, line_octets)));
        out += line_end;
    }
    return out;
}

std::string encoded_lines(std::string_view in, std::size_t line_octets, std::string_view line_end) {
    const std::size_t lines = (in.size() + line_octets - 1) / line_octets;
    std::string out(lines * (base64_length(line_octets) + line_end.size()) + 1, '#');
    out.resize(encode_base64_lines(in, line_octets, line_end, out.data()) + 1);
    // Nothing is written past the encoding.
    EXPECT_EQ(out.back(), '#');
    out.pop_back();
    return out;
}

TEST(base64, lines_of_every_length_match_openssl_line_by_line) {
    std::mt19937 random(57);
    std::string in(600, '\0');
    for (auto& c : in) {
        c = static_cast<char>(random());
    }
    // 57 octets make the 76-character lines of MIME; 24 is the shortest line a vector step
    // fills, 27 and 60 lines it covers with an overlapping step, 58 one that is no multiple of 3.
    for (std::size_t line_octets : {57, 24, 27, 60, 58, 1}) {
        for (std::size_t length = 0; length <= in.size(); ++length) {
            auto text = std::string_view(in).substr(0, length);
            EXPECT_EQ(encoded_lines(text, line_octets, "\r\n"),
                      reference_lines(text, line_octets, "\r\n"))
                << "line " << line_octets << ", length " << length;
        }
    }
    EXPECT_EQ(encoded_lines(in, 57, "\n"), reference_lines(in, 57, "\n"));
}

TEST(base64, large_random_input_matches_openssl) {
    std::mt19937 random(5);
    std::string in(1 << 20, '\0');
    for (auto& c : in) {
        c = static_cast<char>(random());
    }
    EXPECT_EQ(encoded(in), reference(in));
    EXPECT_EQ(encoded_lines(in, 57, "\r\n"), reference_lines(in, 57, "\r\n"));
    RecordProperty("vectorised", base64_vectorised() ? "yes" : "no");
}

} // namespace
} // namespace mailseal::seal::smime
