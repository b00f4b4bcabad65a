// SPDX-License-Identifier: Apache-2.0
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/dns/name.hpp>

namespace mailseal::dns {
namespace {

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
    auto got = to_a_label(c.input);
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
    EXPECT_EQ(to_a_label(name), name);
    EXPECT_EQ(to_a_label(name + "x"), std::nullopt);
}

} // namespace
} // namespace mailseal::dns
