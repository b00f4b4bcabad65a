#include <filesystem>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/keys/local_store.hpp>

#include "test_certs.hpp"

namespace mailseal::keys {
namespace {

namespace fs = std::filesystem;
using test::certs;

void write(const fs::path& file, const std::string& content) {
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << content;
}

std::string corrupt_base64(std::string pem) {
    // Replace a stretch of the base64 body (past the BEGIN line) with characters outside the
    // alphabet.
    pem.replace(pem.find('\n') + 5, 8, "!!!!!!!!");
    return pem;
}

const std::string bad_der_block = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

struct listing_summary {
    std::vector<std::string> certificates; ///< "file:subject CN"
    std::vector<std::string> problems;     ///< "source: why"
};

listing_summary summarize(const local_listing& listing, const fs::path& base) {
    listing_summary out;
    for (const auto& c : listing.certificates) {
        auto report = describe(*c.certificate, "");
        out.certificates.push_back(fs::relative(c.path, base).string() + ":" + report.subject +
                                   ":" + report.key_description);
    }
    for (const auto& p : listing.problems) {
        EXPECT_FALSE(p.usable);
        // "local <base>/x" becomes "x", "local <base>" becomes "local STORE".
        std::string source = p.source;
        std::string local_base = "local " + base.string();
        if (source.starts_with(local_base + "/")) {
            source = source.substr(local_base.size() + 1);
        } else if (source == local_base) {
            source = "local STORE";
        }
        out.problems.push_back(source + ": " + p.why);
    }
    return out;
}

class local_store_test : public testing::Test {
protected:
    void SetUp() override {
        const auto& f = certs();
        auto dir = store_ / "example.org" / "alice";
        write(dir / "a.pem", "Alice's certificates\n" + test::pem(*f.rsa) + "between\n" +
                                 test::pem(*f.ec_agree) + "trailing text\n");
        write(dir / "b.pem", "garbage\n");
        write(dir / "c.pem", test::pem(*f.rsa2) + test::private_key_pem(*f.rsa_key2));
        write(dir / "d.txt", test::pem(*f.rsa));
        write(dir / ".hidden.pem", test::pem(*f.rsa));
        fs::create_directories(dir / "e.pem");
        write(dir / "f.pem", corrupt_base64(test::pem(*f.rsa)));
        write(dir / "g.pem", test::pem(*f.rsa) + bad_der_block);
        write(dir / "h.pem", std::string(1024 * 1024 + 1, 'x'));
        std::string old_label = test::pem(*f.ec384);
        old_label.replace(old_label.find("BEGIN CERTIFICATE"), 17, "BEGIN X509 CERTIFICATE");
        old_label.replace(old_label.find("END CERTIFICATE"), 15, "END X509 CERTIFICATE");
        write(dir / "i.pem", old_label);
        write(store_ / "file.example", "a file where a domain directory should be");
    }

    test::temp_dir tmp_;
    fs::path store_ = tmp_.path() / "store";
};

TEST_F(local_store_test, reads_layout) {
    auto got = summarize(read_local_store(store_, "alice", "example.org"), store_);
    EXPECT_EQ(got.certificates,
              (std::vector<std::string>{"example.org/alice/a.pem:CN=Alice:RSA 2048",
                                        "example.org/alice/a.pem:CN=Alice:EC P-256",
                                        "example.org/alice/c.pem:CN=Alice:RSA 2048",
                                        "example.org/alice/i.pem:CN=Alice:EC P-384"}));
    EXPECT_EQ(got.problems,
              (std::vector<std::string>{
                  "example.org/alice/b.pem: no PEM certificate",
                  "example.org/alice/c.pem: PEM block 2 is \"PRIVATE KEY\", not a certificate: "
                  "ignored",
                  "example.org/alice/f.pem: PEM block 1 does not parse",
                  "example.org/alice/g.pem: PEM block 2: certificate DER does not parse",
                  "example.org/alice/h.pem: larger than 1024 KiB"}));
}

TEST_F(local_store_test, domain_is_lowercased) {
    auto got = read_local_store(store_, "alice", "EXAMPLE.Org");
    EXPECT_EQ(got.certificates.size(), 4u);
}

struct nothing_case {
    std::string name;
    std::string user;
    std::string domain;
    std::string want_problem; ///< empty: no problem either
};

class local_store_nothing_test : public local_store_test,
                                 public testing::WithParamInterface<nothing_case> {};

TEST_P(local_store_nothing_test, lists_no_certificate) {
    const auto& c = GetParam();
    auto got = summarize(read_local_store(store_, c.user, c.domain), store_);
    EXPECT_TRUE(got.certificates.empty()) << "got " << got.certificates.front();
    std::vector<std::string> want;
    if (!c.want_problem.empty()) {
        want.push_back(c.want_problem);
    }
    EXPECT_EQ(got.problems, want);
}

INSTANTIATE_TEST_SUITE_P(
    table, local_store_nothing_test,
    testing::Values(
        nothing_case{"unknown_user", "carol", "example.org", ""},
        nothing_case{"unknown_domain", "alice", "example.net", ""},
        // The user name is the Maildir's, already normalised by the caller: used exactly.
        nothing_case{"user_case_kept", "Alice", "example.org", ""},
        nothing_case{"dot_dot_user", "..", "example.org",
                     "local STORE: \"..@example.org\" cannot name a store directory"},
        nothing_case{"dot_user", ".", "example.org",
                     "local STORE: \".@example.org\" cannot name a store directory"},
        nothing_case{"slash_user", "alice/../bob", "example.org",
                     "local STORE: \"alice/../bob@example.org\" cannot name a store directory"},
        nothing_case{"empty_user", "", "example.org",
                     "local STORE: \"@example.org\" cannot name a store directory"},
        nothing_case{"dot_dot_domain", "alice", "..",
                     "local STORE: \"alice@..\" cannot name a store directory"},
        nothing_case{"nul_in_user", std::string("ali\0ce", 6), "example.org",
                     "local STORE: \"" + std::string("ali\0ce", 6) +
                         "@example.org\" cannot name a store directory"},
        nothing_case{"domain_is_a_file", "alice", "file.example",
                     "file.example/alice: cannot list: Not a directory"}),
    [](const testing::TestParamInfo<nothing_case>& param_info) { return param_info.param.name; });

TEST(local_store, not_configured) {
    auto got = read_local_store("", "alice", "example.org");
    EXPECT_TRUE(got.certificates.empty());
    EXPECT_TRUE(got.problems.empty());
}

TEST_F(local_store_test, unreadable_file_is_reported) {
    if (::geteuid() == 0) {
        GTEST_SKIP() << "root reads every file";
    }
    auto file = store_ / "example.org" / "alice" / "a.pem";
    fs::permissions(file, fs::perms::none);
    auto got = summarize(read_local_store(store_, "alice", "example.org"), store_);
    EXPECT_EQ(got.problems.front(), "example.org/alice/a.pem: cannot open: Permission denied");
}

TEST_F(local_store_test, feeds_evaluate) {
    auto listing = read_local_store(store_, "alice", "example.org");
    auto ev =
        select_keys(dns_outcome::insecure, {}, listing.certificates, policy{}, "alice@example.org",
                    std::chrono::system_clock::from_time_t(test::test_now));
    std::vector<std::string> got;
    for (const auto& k : ev.keys) {
        got.push_back(k.source + " " + std::string(to_string(k.type)));
    }
    // a.pem's EC key and i.pem's P-384 key give way to the RSA keys (rsa-only-if-any).
    auto dir = "local " + (store_ / "example.org" / "alice").string();
    EXPECT_EQ(got, (std::vector<std::string>{dir + "/a.pem rsa", dir + "/c.pem rsa"}));
}

TEST(read_certificate_file, reads_one_file) {
    const auto& f = certs();
    test::temp_dir tmp;
    auto file = tmp.path() / "cert.pem";
    write(file, test::pem(*f.rsa) + test::pem(*f.ca));
    auto got = read_certificate_file(file);
    ASSERT_EQ(got.certificates.size(), 2u);
    EXPECT_EQ(X509_cmp(got.certificates[0].certificate.get(), f.rsa.get()), 0);
    EXPECT_EQ(X509_cmp(got.certificates[1].certificate.get(), f.ca.get()), 0);
    EXPECT_EQ(got.certificates[1].path, file);
    EXPECT_TRUE(got.problems.empty());
}

} // namespace
} // namespace mailseal::keys
