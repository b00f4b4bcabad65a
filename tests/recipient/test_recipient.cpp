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
    EXPECT_EQ(r.mailbox_address(), "alice@b\xc3\xbc"
                                   "cher.example");
    ASSERT_TRUE(r.maildir);
    EXPECT_EQ(r.maildir->string(), "/var/vmail/b\xc3\xbc"
                                   "cher.example/alice/Maildir");
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
} // namespace mailseal::recipient
