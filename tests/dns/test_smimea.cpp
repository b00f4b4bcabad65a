#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/dns/smimea.hpp>

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
    auto got = dns::smimea_owner_name(c.local_part, c.domain);
    EXPECT_EQ(got, c.want) << "got " << got << ", want " << c.want;
}

INSTANTIATE_TEST_SUITE_P(table, owner_name, testing::ValuesIn(owner_cases()),
                         [](const testing::TestParamInfo<owner_case>& p) { return p.param.name; });

TEST(owner_name, first_label_is_56_lowercase_hex_digits) {
    auto got = dns::smimea_owner_name("Some.User", "example.net");
    auto dot = got.find('.');
    ASSERT_EQ(dot, 56u) << got;
    for (char c : got.substr(0, dot)) {
        EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << got;
    }
    EXPECT_EQ(got.substr(dot), "._smimecert.example.net");
}

TEST(owner_name, hashes_embedded_nul_octets) {
    // std::string_view carries the length: a NUL is one more octet, not the end.
    auto with_nul = dns::smimea_owner_name(std::string_view("hu\0gh", 5), "example.com");
    auto without = dns::smimea_owner_name("hugh", "example.com");
    EXPECT_NE(with_nul, without);
}

struct a_label_case {
    std::string name;
    std::string input;
    std::optional<std::string> want;
};

std::vector<a_label_case> a_label_cases() {
    return {
        {"ascii", "example.com", "example.com"},
        {"ascii_uppercase", "Example.COM", "example.com"},
        {"u_label",
         "b\xc3\xbc"
         "cher.example",
         "xn--bcher-kva.example"},
        {"u_label_uppercase",
         "B\xc3\x9c"
         "CHER.Example",
         "xn--bcher-kva.example"},
        {"a_label_kept", "xn--bcher-kva.example", "xn--bcher-kva.example"},
        {"a_label_uppercase", "XN--BCHER-KVA.example", "xn--bcher-kva.example"},
        // Non-transitional (IDNA2008): ß stays ß instead of becoming "ss".
        {"sharp_s_nontransitional", "fa\xc3\x9f.de", "xn--fa-hia.de"},
        {"digits_and_hyphen", "mx-1.2example.org", "mx-1.2example.org"},
        {"single_label", "localhost", "localhost"},
        {"max_label", std::string(63, 'a') + ".org", std::string(63, 'a') + ".org"},
        {"empty", "", std::nullopt},
        {"empty_label", "a..b", std::nullopt},
        {"trailing_dot", "example.com.", std::nullopt},
        {"leading_dot", ".example.com", std::nullopt},
        {"root_only", ".", std::nullopt},
        {"underscore", "exa_mple.com", std::nullopt},
        {"space", "exa mple.com", std::nullopt},
        {"leading_hyphen", "-a.com", std::nullopt},
        {"trailing_hyphen", "a-.com", std::nullopt},
        {"long_label", std::string(64, 'a') + ".org", std::nullopt},
        {"long_name",
         std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
             std::string(59, 'd') + ".org",
         std::nullopt},
        {"bad_punycode", "xn--zz.com", std::nullopt},
        {"address_literal", "[192.0.2.1]", std::nullopt},
        {"embedded_nul", std::string("exa\0mple.com", 12), std::nullopt},
        {"invalid_utf8",
         "b\xfc"
         "cher.example",
         std::nullopt},
    };
}

class a_label : public testing::TestWithParam<a_label_case> {};

TEST_P(a_label, converts_or_rejects) {
    const auto& c = GetParam();
    auto got = dns::to_a_label(c.input);
    EXPECT_EQ(got, c.want) << "got " << got.value_or("(nullopt)") << ", want "
                           << c.want.value_or("(nullopt)");
}

INSTANTIATE_TEST_SUITE_P(table, a_label, testing::ValuesIn(a_label_cases()),
                         [](const testing::TestParamInfo<a_label_case>& p) {
                             return p.param.name;
                         });

TEST(a_label, longest_name_is_accepted) {
    // 63 + 1 + 63 + 1 + 63 + 1 + 57 + 4 = 253 octets, the most a dotted name may have.
    auto name = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') +
                "." + std::string(57, 'd') + ".org";
    ASSERT_EQ(name.size(), 253u);
    EXPECT_EQ(dns::to_a_label(name), name);
    EXPECT_EQ(dns::to_a_label(name + "x"), std::nullopt);
}

struct rdata_case {
    std::string name;
    std::vector<std::uint8_t> rdata;
    std::optional<dns::smimea_record> want;
};

std::vector<rdata_case> rdata_cases() {
    return {
        {"empty", {}, std::nullopt},
        {"one_octet", {3}, std::nullopt},
        {"two_octets", {3, 0}, std::nullopt},
        {"fields_only", {3, 0, 0}, dns::smimea_record{3, 0, 0, {}}},
        {"full_certificate",
         {3, 0, 0, 0x30, 0x82, 0x01},
         dns::smimea_record{3, 0, 0, {0x30, 0x82, 0x01}}},
        {"spki", {3, 1, 0, 0x30, 0x59}, dns::smimea_record{3, 1, 0, {0x30, 0x59}}},
        {"sha256_hash", std::vector<std::uint8_t>(35, 0xab),
         dns::smimea_record{0xab, 0xab, 0xab, std::vector<std::uint8_t>(32, 0xab)}},
        // Unknown values are kept for the key evaluation to reject, not dropped here.
        {"unknown_values", {255, 254, 253, 1}, dns::smimea_record{255, 254, 253, {1}}},
    };
}

class rdata : public testing::TestWithParam<rdata_case> {};

TEST_P(rdata, parses_fields) {
    const auto& c = GetParam();
    auto got = dns::parse_smimea_rdata(c.rdata);
    ASSERT_EQ(got.has_value(), c.want.has_value())
        << "got " << (got ? dns::to_generic(*got) : "(nullopt)") << ", want "
        << (c.want ? dns::to_generic(*c.want) : "(nullopt)");
    if (got) {
        EXPECT_TRUE(*got == *c.want)
            << "got " << dns::to_generic(*got) << ", want " << dns::to_generic(*c.want);
    }
}

INSTANTIATE_TEST_SUITE_P(table, rdata, testing::ValuesIn(rdata_cases()),
                         [](const testing::TestParamInfo<rdata_case>& p) { return p.param.name; });

struct text_case {
    std::string name;
    dns::smimea_record record;
    std::string presentation;
    std::string generic;
};

std::vector<text_case> text_cases() {
    std::string hash_hex;
    for (int i = 0; i < 32; ++i) {
        hash_hex += "5C";
    }
    return {
        {"full_certificate",
         {3, 0, 0, {0x30, 0x82, 0x0a, 0xff}},
         "3 0 0 30820AFF",
         "\\# 7 03000030820AFF"},
        {"spki_sha256",
         {3, 1, 1, std::vector<std::uint8_t>(32, 0x5c)},
         "3 1 1 " + hash_hex,
         "\\# 35 030101" + hash_hex},
        {"pkix_ee", {1, 0, 0, {0x01}}, "1 0 0 01", "\\# 4 01000001"},
        {"large_values", {255, 10, 200, {0xde, 0xad}}, "255 10 200 DEAD", "\\# 5 FF0AC8DEAD"},
        {"no_data", {3, 0, 0, {}}, "3 0 0", "\\# 3 030000"},
    };
}

class text_form : public testing::TestWithParam<text_case> {};

TEST_P(text_form, presentation_and_generic) {
    const auto& c = GetParam();
    auto presentation = dns::to_presentation(c.record);
    auto generic = dns::to_generic(c.record);
    EXPECT_EQ(presentation, c.presentation)
        << "got " << presentation << ", want " << c.presentation;
    EXPECT_EQ(generic, c.generic) << "got " << generic << ", want " << c.generic;
}

INSTANTIATE_TEST_SUITE_P(table, text_form, testing::ValuesIn(text_cases()),
                         [](const testing::TestParamInfo<text_case>& p) { return p.param.name; });

TEST(text_form, generic_round_trips_through_parse) {
    const dns::smimea_record record{3, 1, 0, {0x30, 0x59, 0x30, 0x13}};
    auto generic = dns::to_generic(record);
    // "\# 7 " then the RDATA in hex: decode it and parse it again.
    auto hex = generic.substr(generic.rfind(' ') + 1);
    std::vector<std::uint8_t> wire;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        wire.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    auto parsed = dns::parse_smimea_rdata(wire);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_TRUE(*parsed == record) << "got " << dns::to_generic(*parsed) << ", want " << generic;
}

} // namespace
