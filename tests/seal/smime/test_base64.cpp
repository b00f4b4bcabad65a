// SPDX-License-Identifier: Apache-2.0
#include <random>
#include <string>

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
    std::string out(base64_length(in.size()), '#');
    out.resize(encode_base64(in, out.data()));
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
    }
}

} // namespace
} // namespace mailseal::seal::smime
