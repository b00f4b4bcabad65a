// SPDX-License-Identifier: Apache-2.0
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/dns/lookup.hpp>

namespace mailseal::dns {
namespace {

std::vector<std::uint8_t> name(std::initializer_list<const char*> labels) {
    std::vector<std::uint8_t> out;
    for (const char* label : labels) {
        std::string l(label);
        out.push_back(static_cast<std::uint8_t>(l.size()));
        out.insert(out.end(), l.begin(), l.end());
    }
    out.push_back(0);
    return out;
}

TEST(ParseMx, PreferenceAndExchange) {
    std::vector<std::uint8_t> rdata{0, 10};
    auto host = name({"MX", "Example", "org"});
    rdata.insert(rdata.end(), host.begin(), host.end());
    auto mx = parse_mx(rdata);
    ASSERT_TRUE(mx);
    EXPECT_EQ(mx->preference, 10);
    EXPECT_EQ(mx->exchange, "mx.example.org");
}

TEST(ParseMx, NullMxAndMalformed) {
    auto null_mx = parse_mx(std::vector<std::uint8_t>{0, 0, 0});
    ASSERT_TRUE(null_mx);
    EXPECT_EQ(null_mx->exchange, "");
    EXPECT_FALSE(parse_mx(std::vector<std::uint8_t>{0, 10}));
    EXPECT_FALSE(parse_mx(std::vector<std::uint8_t>{0, 10, 5, 'a', 'b'}));
    // A compression pointer has nothing to point into.
    EXPECT_FALSE(parse_mx(std::vector<std::uint8_t>{0, 10, 0xc0, 0x0c}));
    // Trailing octets after the name.
    EXPECT_FALSE(parse_mx(std::vector<std::uint8_t>{0, 10, 0, 7}));
}

TEST(SignaturesIn, NoneInGarbageOrAnEmptyMessage) {
    EXPECT_FALSE(signatures_in({}, 52));
    EXPECT_FALSE(signatures_in(std::vector<std::uint8_t>{1, 2, 3}, 52));
}

} // namespace
} // namespace mailseal::dns
