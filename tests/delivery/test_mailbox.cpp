#include <algorithm>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <gtest/gtest.h>

#include <mailseal/delivery/mailbox.hpp>

namespace mailseal::delivery {
namespace {

config::config base_config() {
    config::config cfg;
    cfg.local_domains = {"example.org", "mail.example.net"};
    cfg.mailbox.maildir = "/var/vmail/%d/%n/Maildir";
    return cfg;
}

struct resolve_case {
    std::string name;
    lmtp::address recipient;
    bool lowercase = true;
    std::string delimiter = "+";
    std::optional<std::string> want_maildir;
};

class resolve_test : public testing::TestWithParam<resolve_case> {};

TEST_P(resolve_test, maps_recipient_to_maildir) {
    const auto& c = GetParam();
    auto cfg = base_config();
    cfg.mailbox.lowercase_local_part = c.lowercase;
    cfg.mailbox.recipient_delimiter = c.delimiter;
    auto got = resolve(cfg, c.recipient);
    if (!c.want_maildir) {
        EXPECT_FALSE(got) << "got " << got->maildir << ", want no mailbox";
        return;
    }
    ASSERT_TRUE(got) << "got no mailbox, want " << *c.want_maildir;
    EXPECT_EQ(got->maildir.string(), *c.want_maildir);
}

INSTANTIATE_TEST_SUITE_P(
    table, resolve_test,
    testing::Values(
        resolve_case{
            "plain", {"alice", "example.org"}, true, "+", "/var/vmail/example.org/alice/Maildir"},
        resolve_case{"domain_case",
                     {"alice", "EXAMPLE.Org"},
                     true,
                     "+",
                     "/var/vmail/example.org/alice/Maildir"},
        resolve_case{"local_lowercased",
                     {"Alice", "example.org"},
                     true,
                     "+",
                     "/var/vmail/example.org/alice/Maildir"},
        resolve_case{"local_case_kept",
                     {"Alice", "example.org"},
                     false,
                     "+",
                     "/var/vmail/example.org/Alice/Maildir"},
        resolve_case{"extension_dropped",
                     {"alice+lists", "example.org"},
                     true,
                     "+",
                     "/var/vmail/example.org/alice/Maildir"},
        resolve_case{"first_of_several_delimiters",
                     {"alice-x+y", "example.org"},
                     true,
                     "+-",
                     "/var/vmail/example.org/alice/Maildir"},
        resolve_case{"delimiter_disabled",
                     {"alice+lists", "example.org"},
                     true,
                     "",
                     "/var/vmail/example.org/alice+lists/Maildir"},
        resolve_case{"leading_delimiter_kept",
                     {"+list", "example.org"},
                     true,
                     "+",
                     "/var/vmail/example.org/+list/Maildir"},
        resolve_case{"utf8_bytes_untouched",
                     {"J\xc3\xbcrgen", "example.org"},
                     true,
                     "+",
                     "/var/vmail/example.org/j\xc3\xbcrgen/Maildir"},
        resolve_case{"second_domain",
                     {"bob", "mail.example.net"},
                     true,
                     "+",
                     "/var/vmail/mail.example.net/bob/Maildir"},
        resolve_case{"foreign_domain", {"alice", "example.com"}, true, "+", std::nullopt},
        resolve_case{"postmaster_without_domain",
                     {"PostMaster", ""},
                     true,
                     "+",
                     "/var/vmail/example.org/postmaster/Maildir"},
        resolve_case{"other_local_part_without_domain", {"alice", ""}, true, "+", std::nullopt},
        resolve_case{"dot", {".", "example.org"}, true, "+", std::nullopt},
        resolve_case{"dotdot", {"..", "example.org"}, true, "+", std::nullopt},
        resolve_case{"dotdot_after_extension", {"..+x", "example.org"}, true, "+", std::nullopt},
        resolve_case{"slash", {"a/b", "example.org"}, true, "+", std::nullopt},
        resolve_case{"nul", {std::string("a\0b", 3), "example.org"}, true, "+", std::nullopt}),
    [](const auto& p) { return p.param.name; });

TEST(recipient_domain, postmaster_without_domain_is_the_first_local_domain) {
    auto cfg = base_config();
    EXPECT_EQ(recipient_domain(cfg, {"POSTMASTER", ""}), "example.org");
    EXPECT_EQ(recipient_domain(cfg, {"alice", "Example.ORG"}), "example.org");
    EXPECT_EQ(recipient_domain(cfg, {"alice", ""}), "");
}

TEST(expand_template, every_escape) {
    EXPECT_EQ(expand_template("/m/%d/%n/%u/100%%/Maildir", "bob", "example.org"),
              "/m/example.org/bob/bob@example.org/100%/Maildir");
}

class recipient_policy_test : public testing::Test {
protected:
    void SetUp() override {
        root_ = std::filesystem::temp_directory_path() /
                ("mailseal-policy-" + std::to_string(::getpid()));
        std::filesystem::create_directories(root_ / "example.org" / "alice" / "Maildir");
        cfg_ = base_config();
        cfg_.mailbox.maildir = (root_ / "%d/%n/Maildir").string();
    }
    void TearDown() override { std::filesystem::remove_all(root_); }

    std::filesystem::path root_;
    config::config cfg_;
};

TEST_F(recipient_policy_test, refuse_missing_maildir) {
    cfg_.mailbox.on_missing = config::missing_maildir::refuse;
    EXPECT_EQ(verify_recipient(cfg_, {"alice", "example.org"}), std::nullopt);
    auto refused = verify_recipient(cfg_, {"carol", "example.org"});
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->summary(), "550 5.1.1 No such user here");
}

TEST_F(recipient_policy_test, refuse_maildir_that_is_not_a_directory) {
    cfg_.mailbox.on_missing = config::missing_maildir::refuse;
    std::filesystem::create_directories(root_ / "example.org" / "dave");
    { std::ofstream(root_ / "example.org" / "dave" / "Maildir") << "not a directory"; }
    { std::ofstream(root_ / "example.org" / "frank") << "a file where a directory should be"; }
    EXPECT_EQ(verify_recipient(cfg_, {"dave", "example.org"})->summary(),
              "550 5.1.1 No such user here");
    EXPECT_EQ(verify_recipient(cfg_, {"frank", "example.org"})->summary(),
              "550 5.1.1 No such user here")
        << "ENOTDIR";
}

TEST_F(recipient_policy_test, unreadable_mail_root_defers_instead_of_bouncing) {
    cfg_.mailbox.on_missing = config::missing_maildir::refuse;
    // A symlink loop gives ELOOP even for root: no verdict on the user, so 4xx.
    std::filesystem::create_directory_symlink(root_ / "loop", root_ / "loop");
    cfg_.mailbox.maildir = (root_ / "loop/%n/Maildir").string();
    auto verdict = verify_recipient(cfg_, {"alice", "example.org"});
    ASSERT_TRUE(verdict);
    EXPECT_EQ(verdict->summary(), "451 4.3.0 Temporary local problem, try again later");
}

TEST_F(recipient_policy_test, create_accepts_missing_maildir) {
    cfg_.mailbox.on_missing = config::missing_maildir::create;
    EXPECT_EQ(verify_recipient(cfg_, {"carol", "example.org"}), std::nullopt);
    EXPECT_FALSE(std::filesystem::exists(root_ / "example.org" / "carol"))
        << "RCPT must not create anything";
}

TEST_F(recipient_policy_test, foreign_domain_and_unsafe_name_refused) {
    EXPECT_EQ(verify_recipient(cfg_, {"alice", "example.com"})->code(), 550);
    EXPECT_EQ(verify_recipient(cfg_, {"..", "example.org"})->code(), 550);
}

TEST_F(recipient_policy_test, existing_maildirs_found_by_template) {
    std::filesystem::create_directories(root_ / "example.org" / "alice" / "Maildir" / "tmp");
    std::filesystem::create_directories(root_ / "example.org" / "bob" / "Maildir" / "tmp");
    std::filesystem::create_directories(root_ / "example.org" / "notamaildir");
    auto found = existing_maildirs(cfg_);
    std::sort(found.begin(), found.end());
    ASSERT_EQ(found.size(), 2u);
    EXPECT_EQ(found[0], root_ / "example.org/alice/Maildir");
    EXPECT_EQ(found[1], root_ / "example.org/bob/Maildir");
}

} // namespace
} // namespace mailseal::delivery
