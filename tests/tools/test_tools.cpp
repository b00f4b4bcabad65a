// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include <mailseal/tools/tools.hpp>
#include <mailseal/util/ascii.hpp>

namespace mailseal::tools {
namespace {

struct maildir_case {
    std::string name;
    std::string pattern;
    std::string path;
    std::optional<std::string> want;
};

class address_from_maildir_test : public testing::TestWithParam<maildir_case> {};

TEST_P(address_from_maildir_test, recovers_the_address) {
    const auto& c = GetParam();
    auto got = address_from_maildir(c.pattern, c.path);
    EXPECT_EQ(got, c.want) << "got " << got.value_or("nothing") << ", want "
                           << c.want.value_or("nothing");
}

INSTANTIATE_TEST_SUITE_P(
    table, address_from_maildir_test,
    testing::Values(maildir_case{"domain_then_user", "/var/vmail/%d/%n/Maildir",
                                 "/var/vmail/example.org/alice/Maildir", "alice@example.org"},
                    maildir_case{"user_then_domain", "/srv/%n/at/%d", "/srv/bob/at/example.net",
                                 "bob@example.net"},
                    maildir_case{"full_address", "/var/mail/%u", "/var/mail/carol@example.org",
                                 "carol@example.org"},
                    maildir_case{"escape_inside_component", "/var/vmail/%d/%n.maildir",
                                 "/var/vmail/example.org/alice.maildir", std::nullopt},
                    maildir_case{"user_only", "/home/%n/Maildir", "/home/alice/Maildir",
                                 std::nullopt},
                    maildir_case{"depth_differs", "/var/vmail/%d/%n/Maildir",
                                 "/var/vmail/example.org/Maildir", std::nullopt}),
    [](const auto& p) { return p.param.name; });

TEST(parse_when, relative_and_absolute_times) {
    auto now = std::chrono::system_clock::from_time_t(1'800'000'000);
    EXPECT_EQ(parse_when("+30d", now), now + std::chrono::hours(24 * 30));
    EXPECT_EQ(parse_when("+12h", now), now + std::chrono::hours(12));
    EXPECT_EQ(parse_when("+90m", now), now + std::chrono::minutes(90));
    EXPECT_EQ(parse_when("2027-01-31", now), std::chrono::system_clock::from_time_t(1'801'353'600));
    EXPECT_EQ(parse_when("2027-01-31T12:00:00Z", now),
              std::chrono::system_clock::from_time_t(1'801'396'800));
    EXPECT_EQ(parse_when("+36525d", now), now + std::chrono::hours(24 * 36525));
    for (const char* bad : {"", "+", "+d", "+30", "+30w", "+-3d", "30d", "2027-13-45", "2027-02-31",
                            "2027-01-31T25:00:00Z", "2027-01-31T12:00:00", "tomorrow",
                            "+9999999999d", "+999999999d", "+36526d", "2300-01-01", "1900-01-01"}) {
        EXPECT_FALSE(parse_when(bad, now)) << bad;
    }
}

TEST(printable, control_characters_cannot_start_a_line) {
    EXPECT_EQ(util::printable("CN=a\nOK forged@line\r\t\x7f\xc3\xa9"),
              "CN=a?OK forged@line???\xc3\xa9");
}

} // namespace
} // namespace mailseal::tools
