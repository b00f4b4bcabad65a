// SPDX-License-Identifier: Apache-2.0
#include <memory>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/discovery/discovery.hpp>
#include <mailseal/seal/formats.hpp>

namespace mailseal::discovery {
namespace {

const seal::format_set& formats() {
    static const auto set = std::get<seal::format_set>(seal::format_set::load(config::config{}));
    return set;
}

/// One format's lookup with `keys` usable keys.
format_lookup looked_up(config::seal_format id, dns::outcome result, std::size_t keys,
                        bool provisional = false) {
    format_lookup l;
    l.format = formats().get(id);
    l.lookup.result = result;
    l.evaluation.keys.resize(keys);
    l.evaluation.provisional = provisional;
    return l;
}

constexpr auto smime = config::seal_format::smime;
constexpr auto openpgp = config::seal_format::openpgp;

TEST(choose_keys, takes_the_first_format_with_keys) {
    auto chosen = choose_keys({looked_up(smime, dns::outcome::secure_absent, 0),
                               looked_up(openpgp, dns::outcome::secure_records, 2)});
    EXPECT_EQ(chosen.outcome, dns::outcome::secure_records);
    EXPECT_EQ(chosen.format, formats().get(openpgp));
    EXPECT_EQ(chosen.keys.size(), 2u);
    EXPECT_FALSE(chosen.unsettled);
}

TEST(choose_keys, a_failed_lookup_of_any_format_leaves_no_keys) {
    for (auto refusal : {dns::outcome::bogus, dns::outcome::failure}) {
        auto chosen = choose_keys(
            {looked_up(smime, dns::outcome::secure_records, 1), looked_up(openpgp, refusal, 0)});
        EXPECT_EQ(chosen.outcome, refusal);
        EXPECT_EQ(chosen.format, nullptr);
        EXPECT_TRUE(chosen.keys.empty());
    }
}

TEST(choose_keys, a_provisional_verdict_without_keys_is_unsettled_not_keyless) {
    // Alone, and ahead of a format that has keys: either way the key it may have missed is
    // the one the recipient prefers.
    for (auto lookups : std::vector<std::vector<format_lookup>>{
             {looked_up(smime, dns::outcome::secure_records, 0, true)},
             {looked_up(smime, dns::outcome::secure_records, 0, true),
              looked_up(openpgp, dns::outcome::secure_records, 1)}}) {
        auto chosen = choose_keys(lookups);
        EXPECT_TRUE(chosen.unsettled);
        EXPECT_TRUE(chosen.keys.empty());
        EXPECT_EQ(chosen.format, nullptr);
    }
}

TEST(choose_keys, a_provisional_verdict_after_the_chosen_format_changes_nothing) {
    auto chosen = choose_keys({looked_up(smime, dns::outcome::secure_records, 1),
                               looked_up(openpgp, dns::outcome::secure_records, 0, true)});
    EXPECT_FALSE(chosen.unsettled);
    EXPECT_EQ(chosen.format, formats().get(smime));
    EXPECT_EQ(chosen.keys.size(), 1u);
}

TEST(choose_keys, a_provisional_verdict_that_found_keys_is_used) {
    auto chosen = choose_keys({looked_up(smime, dns::outcome::secure_records, 1, true)});
    EXPECT_FALSE(chosen.unsettled);
    EXPECT_EQ(chosen.keys.size(), 1u);
}

} // namespace
} // namespace mailseal::discovery
