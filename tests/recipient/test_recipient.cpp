// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/recipient/recipient.hpp>

namespace mailseal::recipient {
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
        EXPECT_FALSE(got) << "got a mailbox, want none";
        return;
    }
    ASSERT_TRUE(got) << "got no mailbox, want " << *c.want_maildir;
    ASSERT_TRUE(got->maildir);
    EXPECT_EQ(got->maildir->string(), *c.want_maildir);
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

TEST(normalise, every_field_once) {
    auto cfg = base_config();
    cfg.local_domains.push_back("b\xc3\xbc"
                                "cher.example");
    auto r = normalise(cfg, {"Alice+Lists", "B\xc3\xbc"
                                            "cher.Example"});
    EXPECT_EQ(r.written.local_part, "Alice+Lists") << "the address as written is kept";
    EXPECT_EQ(r.base_local_part, "Alice") << "extension dropped, case kept";
    EXPECT_EQ(r.user, "alice");
    EXPECT_EQ(r.domain, "b\xc3\xbc"
                        "cher.example")
        << "ASCII letters lowercased only";
    EXPECT_EQ(r.a_label, "xn--bcher-kva.example");
    EXPECT_EQ(r.key_address(), "Alice@xn--bcher-kva.example");
    ASSERT_TRUE(r.maildir);
    EXPECT_EQ(r.maildir->string(), "/var/vmail/b\xc3\xbc"
                                   "cher.example/alice/Maildir");
}

TEST(normalise, both_forms_of_an_idn_name_one_mailbox) {
    auto u_label_config = base_config();
    u_label_config.local_domains = {"b\xc3\xbc"
                                    "cher.example"};
    auto a_label_config = base_config();
    a_label_config.local_domains = {"xn--bcher-kva.example"};
    for (const auto* written : {"xn--bcher-kva.example", "XN--BCHER-KVA.example",
                                "b\xc3\xbc"
                                "cher.example",
                                "B\xc3\x9c"
                                "CHER.example"}) {
        auto in_u = normalise(u_label_config, {"bob", written});
        ASSERT_TRUE(in_u.maildir) << written;
        EXPECT_EQ(in_u.maildir->string(), "/var/vmail/b\xc3\xbc"
                                          "cher.example/bob/Maildir")
            << written;
        auto in_a = normalise(a_label_config, {"bob", written});
        ASSERT_TRUE(in_a.maildir) << written;
        EXPECT_EQ(in_a.maildir->string(), "/var/vmail/xn--bcher-kva.example/bob/Maildir")
            << written;
        EXPECT_EQ(in_a.key_address(), "bob@xn--bcher-kva.example");
    }
    EXPECT_FALSE(normalise(u_label_config, {"bob", "xn--bcher-kvb.example"}).maildir);
}

TEST(normalise, foreign_address_has_no_maildir) {
    auto r = normalise(base_config(), {"bob+x", "Example.COM"});
    EXPECT_FALSE(r.maildir);
    EXPECT_EQ(r.key_address(), "bob@example.com");
    EXPECT_EQ(resolve(base_config(), {"bob", "example.com"}), std::nullopt);
}

TEST(normalise, invalid_domain_has_no_a_label) {
    auto r = normalise(base_config(), {"bob", "exa_mple.com"});
    EXPECT_EQ(r.a_label, std::nullopt);
    EXPECT_EQ(r.key_address(), "bob@exa_mple.com");
}

TEST(normalise, postmaster_without_domain_is_the_first_local_domain) {
    auto cfg = base_config();
    EXPECT_EQ(normalise(cfg, {"POSTMASTER", ""}).domain, "example.org");
    EXPECT_EQ(normalise(cfg, {"alice", "Example.ORG"}).domain, "example.org");
    EXPECT_EQ(normalise(cfg, {"alice", ""}).domain, "");
}

TEST(expand_template, every_escape) {
    EXPECT_EQ(expand_template("/m/%d/%n/%u/100%%/Maildir", "bob", "example.org"),
              "/m/example.org/bob/bob@example.org/100%/Maildir");
}

TEST(existing_maildirs, found_by_template) {
    auto root = std::filesystem::temp_directory_path() /
                ("mailseal-maildirs-" + std::to_string(::getpid()));
    std::filesystem::create_directories(root / "example.org" / "alice" / "Maildir" / "tmp");
    std::filesystem::create_directories(root / "example.org" / "bob" / "Maildir" / "tmp");
    std::filesystem::create_directories(root / "example.org" / "notamaildir");
    auto cfg = base_config();
    cfg.mailbox.maildir = (root / "%d/%n/Maildir").string();
    auto found = existing_maildirs(cfg);
    std::sort(found.begin(), found.end());
    std::filesystem::remove_all(root);
    ASSERT_EQ(found.size(), 2u);
    EXPECT_EQ(found[0], root / "example.org/alice/Maildir");
    EXPECT_EQ(found[1], root / "example.org/bob/Maildir");
}

} // namespace
} // namespace mailseal::recipient
