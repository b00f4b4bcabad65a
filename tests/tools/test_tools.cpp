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

TEST(printable, control_characters_cannot_start_a_line) {
    EXPECT_EQ(util::printable("CN=a\nOK forged@line\r\t\x7f\xc3\xa9"),
              "CN=a?OK forged@line???\xc3\xa9");
}

} // namespace
} // namespace mailseal::tools
