// SPDX-License-Identifier: Apache-2.0
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/dns/lookup.hpp>

namespace dns = mailseal::dns;

namespace {

struct owner_case {
    std::string name;
    std::string local_part;
    std::string domain;
    std::string want;
};

// Every hash below was cross-checked with `printf '%s' LOCAL | sha256sum | cut -c1-56`.
std::vector<owner_case> owner_cases() {
    return {
        // RFC 8162 §3 (and RFC 7929 §3): the worked example.
        {"rfc_example", "hugh", "example.com",
         "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._smimecert.example.com"},
        // The hash is over the exact octets: case changes the name.
        {"uppercase_differs", "Hugh", "example.com",
         "7063a398942ba5c6125429518d0608563f3974bb48013ddf58fb01d4._smimecert.example.com"},
        {"packager", "packager", "example.org",
         "d6fb116e0485a16e447de0c6317eb48e6ce1370e7986400f95ebad00._smimecert.example.org"},
        // A '+' extension is part of the octets; dropping it is the caller's policy.
        {"plus_extension_kept", "hugh+tag", "example.com",
         "e31dd5362720a0ede7e9ce557e5e9a61861560a6b2d63a8fc4d1417b._smimecert.example.com"},
        {"dot_kept", "a.b", "example.com",
         "2e7336dc8eba87ef472df568c35482abf2575dc3e5eac0c5c62b8ffa._smimecert.example.com"},
        // UTF-8 local parts: NFC (U+00FC) and NFD (u + U+0308) give different names, since
        // RFC 8162 specifies no normalisation.
        {"utf8_nfc", "j\xc3\xbcrgen", "example.com",
         "19b720a911fced55aecd96bf4ddcada1c69be5a96dc523d5be336b8e._smimecert.example.com"},
        {"utf8_nfd", "ju\xcc\x88rgen", "example.com",
         "82d82fd33dff330fcb661f10b4050b29a882209665eb41e028c2b315._smimecert.example.com"},
        {"utf8_uppercase", "J\xc3\xbcrgen", "example.com",
         "c58fb672c97fba72a3a3f7f01b564d5602f721bd80ff899c0c7ccc18._smimecert.example.com"},
        {"empty_local_part", "", "example.com",
         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b._smimecert.example.com"},
        {"a_label_domain", "hugh", "xn--bcher-kva.example",
         "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._smimecert.xn--bcher-kva."
         "example"},
    };
}

class owner_name : public testing::TestWithParam<owner_case> {};

TEST_P(owner_name, matches_sha256_truncated) {
    const auto& c = GetParam();
    auto got = dns::hashed_owner_name(c.local_part, "_smimecert", c.domain);
    EXPECT_EQ(got, c.want) << "got " << got << ", want " << c.want;
}

INSTANTIATE_TEST_SUITE_P(table, owner_name, testing::ValuesIn(owner_cases()),
                         [](const testing::TestParamInfo<owner_case>& p) { return p.param.name; });

TEST(owner_name, first_label_is_56_lowercase_hex_digits) {
    auto got = dns::hashed_owner_name("Some.User", "_smimecert", "example.net");
    auto dot = got.find('.');
    ASSERT_EQ(dot, 56u) << got;
    for (char c : got.substr(0, dot)) {
        EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << got;
    }
    EXPECT_EQ(got.substr(dot), "._smimecert.example.net");
}

TEST(owner_name, hashes_embedded_nul_octets) {
    // std::string_view carries the length: a NUL is one more octet, not the end.
    auto with_nul =
        dns::hashed_owner_name(std::string_view("hu\0gh", 5), "_smimecert", "example.com");
    auto without = dns::hashed_owner_name("hugh", "_smimecert", "example.com");
    EXPECT_NE(with_nul, without);
}

TEST(owner_name, openpgpkey_label) {
    // RFC 7929 §3's example: the same hash as SMIMEA's, under _openpgpkey.
    EXPECT_EQ(dns::hashed_owner_name("hugh", "_openpgpkey", "example.com"),
              "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._openpgpkey.example.com");
}

struct generic_case {
    std::string name;
    std::vector<std::uint8_t> rdata;
    std::string want;
};

class generic_form : public testing::TestWithParam<generic_case> {};

TEST_P(generic_form, is_rfc3597_text) {
    const auto& c = GetParam();
    auto got = dns::generic_rdata(c.rdata);
    EXPECT_EQ(got, c.want) << "got " << got << ", want " << c.want;
}

INSTANTIATE_TEST_SUITE_P(
    table, generic_form,
    testing::Values(
        generic_case{"smimea", {3, 0, 0, 0x30, 0x82, 0x0a, 0xff}, "\\# 7 03000030820AFF"},
        generic_case{"large_values", {255, 10, 200, 0xde, 0xad}, "\\# 5 FF0AC8DEAD"},
        generic_case{"fixed_fields_only", {3, 0, 0}, "\\# 3 030000"},
        generic_case{"empty", {}, "\\# 0 "}),
    [](const testing::TestParamInfo<generic_case>& p) { return p.param.name; });

TEST(generic_form, round_trips) {
    const std::vector<std::uint8_t> rdata{3, 1, 0, 0x30, 0x59, 0x30, 0x13};
    auto generic = dns::generic_rdata(rdata);
    // "\# 7 " then the RDATA in hex: decode it again.
    auto hex = generic.substr(generic.rfind(' ') + 1);
    std::vector<std::uint8_t> wire;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        wire.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    EXPECT_EQ(wire, rdata) << generic;
}

} // namespace
