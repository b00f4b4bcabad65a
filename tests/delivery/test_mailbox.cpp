// SPDX-License-Identifier: Apache-2.0
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <variant>

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

using verify_result = std::variant<recipient::recipient, lmtp::reply>;

bool accepted(const verify_result& v) {
    return std::holds_alternative<recipient::recipient>(v);
}

/// The refusal's summary, or "accepted".
std::string refusal(const verify_result& v) {
    const auto* r = std::get_if<lmtp::reply>(&v);
    return r != nullptr ? r->summary() : "accepted";
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
    EXPECT_TRUE(accepted(verify_recipient(cfg_, {"alice", "example.org"})));
    EXPECT_EQ(refusal(verify_recipient(cfg_, {"carol", "example.org"})),
              "550 5.1.1 No such user here");
}

TEST_F(recipient_policy_test, refuse_maildir_that_is_not_a_directory) {
    cfg_.mailbox.on_missing = config::missing_maildir::refuse;
    std::filesystem::create_directories(root_ / "example.org" / "dave");
    { std::ofstream(root_ / "example.org" / "dave" / "Maildir") << "not a directory"; }
    { std::ofstream(root_ / "example.org" / "frank") << "a file where a directory should be"; }
    EXPECT_EQ(refusal(verify_recipient(cfg_, {"dave", "example.org"})),
              "550 5.1.1 No such user here");
    EXPECT_EQ(refusal(verify_recipient(cfg_, {"frank", "example.org"})),
              "550 5.1.1 No such user here")
        << "ENOTDIR";
}

TEST_F(recipient_policy_test, unreadable_mail_root_defers_instead_of_bouncing) {
    cfg_.mailbox.on_missing = config::missing_maildir::refuse;
    // A symlink loop gives ELOOP even for root: no verdict on the user, so 4xx.
    std::filesystem::create_directory_symlink(root_ / "loop", root_ / "loop");
    cfg_.mailbox.maildir = (root_ / "loop/%n/Maildir").string();
    EXPECT_EQ(refusal(verify_recipient(cfg_, {"alice", "example.org"})),
              "451 4.3.0 Temporary local problem, try again later");
}

TEST_F(recipient_policy_test, create_accepts_missing_maildir) {
    cfg_.mailbox.on_missing = config::missing_maildir::create;
    auto verdict = verify_recipient(cfg_, {"carol", "example.org"});
    ASSERT_TRUE(accepted(verdict));
    EXPECT_EQ(std::get<recipient::recipient>(verdict).user, "carol");
    EXPECT_FALSE(std::filesystem::exists(root_ / "example.org" / "carol"))
        << "RCPT must not create anything";
}

TEST_F(recipient_policy_test, foreign_domain_and_unsafe_name_refused) {
    EXPECT_EQ(refusal(verify_recipient(cfg_, {"alice", "example.com"})).substr(0, 3), "550");
    EXPECT_EQ(refusal(verify_recipient(cfg_, {"..", "example.org"})).substr(0, 3), "550");
}

} // namespace
} // namespace mailseal::delivery
