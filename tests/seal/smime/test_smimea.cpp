// SPDX-License-Identifier: Apache-2.0
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/seal/smime/evaluate.hpp>

namespace mailseal::seal::smime {
namespace {

std::string describe(const smimea_record& r) {
    return std::to_string(r.usage) + " " + std::to_string(r.selector) + " " +
           std::to_string(r.matching_type) + " (" + std::to_string(r.data.size()) + " octets)";
}

struct rdata_case {
    std::string name;
    std::vector<std::uint8_t> rdata;
    std::optional<smimea_record> want;
};

std::vector<rdata_case> rdata_cases() {
    return {
        {"empty", {}, std::nullopt},
        {"one_octet", {3}, std::nullopt},
        {"two_octets", {3, 0}, std::nullopt},
        {"fields_only", {3, 0, 0}, smimea_record{3, 0, 0, {}}},
        {"full_certificate",
         {3, 0, 0, 0x30, 0x82, 0x01},
         smimea_record{3, 0, 0, {0x30, 0x82, 0x01}}},
        {"spki", {3, 1, 0, 0x30, 0x59}, smimea_record{3, 1, 0, {0x30, 0x59}}},
        {"sha256_hash", std::vector<std::uint8_t>(35, 0xab),
         smimea_record{0xab, 0xab, 0xab, std::vector<std::uint8_t>(32, 0xab)}},
        // Unknown values are kept for the key evaluation to reject, not dropped here.
        {"unknown_values", {255, 254, 253, 1}, smimea_record{255, 254, 253, {1}}},
    };
}

class rdata : public testing::TestWithParam<rdata_case> {};

TEST_P(rdata, parses_fields) {
    const auto& c = GetParam();
    auto got = parse_smimea_rdata(c.rdata);
    ASSERT_EQ(got.has_value(), c.want.has_value())
        << "got " << (got ? describe(*got) : "(nullopt)") << ", want "
        << (c.want ? describe(*c.want) : "(nullopt)");
    if (got) {
        EXPECT_TRUE(*got == *c.want) << "got " << describe(*got) << ", want " << describe(*c.want);
    }
}

INSTANTIATE_TEST_SUITE_P(table, rdata, testing::ValuesIn(rdata_cases()),
                         [](const testing::TestParamInfo<rdata_case>& p) { return p.param.name; });

struct text_case {
    std::string name;
    smimea_record record;
    std::string presentation;
};

std::vector<text_case> text_cases() {
    std::string hash_hex;
    for (int i = 0; i < 32; ++i) {
        hash_hex += "5C";
    }
    return {
        {"full_certificate", {3, 0, 0, {0x30, 0x82, 0x0a, 0xff}}, "3 0 0 30820AFF"},
        {"spki_sha256", {3, 1, 1, std::vector<std::uint8_t>(32, 0x5c)}, "3 1 1 " + hash_hex},
        {"pkix_ee", {1, 0, 0, {0x01}}, "1 0 0 01"},
        {"large_values", {255, 10, 200, {0xde, 0xad}}, "255 10 200 DEAD"},
        {"no_data", {3, 0, 0, {}}, "3 0 0"},
    };
}

class text_form : public testing::TestWithParam<text_case> {};

TEST_P(text_form, presentation) {
    const auto& c = GetParam();
    auto presentation = to_presentation(c.record);
    EXPECT_EQ(presentation, c.presentation)
        << "got " << presentation << ", want " << c.presentation;
}

INSTANTIATE_TEST_SUITE_P(table, text_form, testing::ValuesIn(text_cases()),
                         [](const testing::TestParamInfo<text_case>& p) { return p.param.name; });

} // namespace
} // namespace mailseal::seal::smime
