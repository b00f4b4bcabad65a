// SPDX-License-Identifier: Apache-2.0
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/config/config.hpp>
#include <mailseal/seal/smime/certificate_file.hpp>
#include <mailseal/seal/smime/smime.hpp>

#include "test_certs.hpp"

namespace mailseal::seal::smime {
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

listing_summary summarize(const certificate_listing& listing, const fs::path& base) {
    listing_summary out;
    for (const auto& c : listing.certificates) {
        auto report = describe(*c.certificate, "");
        out.certificates.push_back(fs::relative(c.path, base).string() + ":" + report.subject +
                                   ":" + report.key_description);
    }
    for (const auto& p : listing.problems) {
        EXPECT_FALSE(p.usable);
        EXPECT_TRUE(p.local);
        // "local <base>/x" becomes "x".
        out.problems.push_back(p.source.substr(("local " + base.string() + "/").size()) + ": " +
                               p.why);
    }
    return out;
}

class certificate_file_test : public testing::Test {
protected:
    void SetUp() override {
        const auto& f = certs();
        auto dir = store_ / "example.org" / "alice";
        write(dir / "a.pem", "Alice's certificates\n" + test::pem(*f.rsa) + "between\n" +
                                 test::pem(*f.ec_agree) + "trailing text\n");
        write(dir / "b.pem", "garbage\n");
        write(dir / "c.pem", test::pem(*f.rsa2) + test::private_key_pem(*f.rsa_key2));
        write(dir / "f.pem", corrupt_base64(test::pem(*f.rsa)));
        write(dir / "g.pem", test::pem(*f.rsa) + bad_der_block);
        write(dir / "h.pem", std::string(1024 * 1024 + 1, 'x'));
        std::string old_label = test::pem(*f.ec384);
        old_label.replace(old_label.find("BEGIN CERTIFICATE"), 17, "BEGIN X509 CERTIFICATE");
        old_label.replace(old_label.find("END CERTIFICATE"), 15, "END X509 CERTIFICATE");
        write(dir / "i.pem", old_label);
    }

    test::temp_dir tmp_;
    fs::path store_ = tmp_.path() / "store";
};

/// The store directory's certificate files read one by one, in name order, as key discovery
/// hands them over.
certificate_listing read_dir(const fs::path& dir) {
    certificate_listing out;
    for (const char* name : {"a.pem", "b.pem", "c.pem", "f.pem", "g.pem", "h.pem", "i.pem"}) {
        auto listing = read_certificate_file(dir / name);
        std::move(listing.certificates.begin(), listing.certificates.end(),
                  std::back_inserter(out.certificates));
        std::move(listing.problems.begin(), listing.problems.end(),
                  std::back_inserter(out.problems));
    }
    return out;
}

TEST_F(certificate_file_test, reads_each_file) {
    auto got = summarize(read_dir(store_ / "example.org" / "alice"), store_);
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

TEST_F(certificate_file_test, unreadable_file_is_reported) {
    if (::geteuid() == 0) {
        GTEST_SKIP() << "root reads every file";
    }
    auto file = store_ / "example.org" / "alice" / "a.pem";
    fs::permissions(file, fs::perms::none);
    auto got = summarize(read_certificate_file(file), store_);
    EXPECT_EQ(got.problems.front(), "example.org/alice/a.pem: cannot open: Permission denied");
}

TEST_F(certificate_file_test, format_evaluates_store_files) {
    auto made = make_format(config::config{});
    ASSERT_TRUE(std::holds_alternative<std::shared_ptr<const format>>(made));
    const auto& f = *std::get<std::shared_ptr<const format>>(made);
    auto dir = store_ / "example.org" / "alice";
    std::vector<fs::path> files;
    for (const char* name : {"a.pem", "b.pem", "c.pem", "i.pem"}) {
        EXPECT_TRUE(f.stores(dir / name)) << name;
        files.push_back(dir / name);
    }
    EXPECT_FALSE(f.stores(dir / "d.txt"));
    dns::lookup_result insecure;
    insecure.result = dns::outcome::insecure;
    auto ev = f.evaluate(insecure, files, "alice@example.org",
                         std::chrono::system_clock::from_time_t(test::test_now));
    std::vector<std::string> got;
    for (const auto& k : ev.keys) {
        got.push_back(k.source + " " + k.algorithm);
    }
    // a.pem's EC key and i.pem's P-384 key give way to the RSA keys (rsa-only-if-any).
    auto prefix = "local " + dir.string();
    EXPECT_EQ(got, (std::vector<std::string>{prefix + "/a.pem rsa", prefix + "/c.pem rsa"}));
    ASSERT_EQ(ev.local_problems.size(), 2u) << "b.pem's and c.pem's";
    EXPECT_EQ(ev.decision, "SMIMEA lookup insecure (zone not signed): local certificate store");
}

TEST(read_certificate_file, der_file) {
    const auto& f = certs();
    test::temp_dir tmp;
    auto file = tmp.path() / "cert.der";
    auto der = test::der(*f.rsa);
    write(file, std::string(der.begin(), der.end()));
    auto got = read_certificate_file(file);
    ASSERT_EQ(got.certificates.size(), 1u);
    EXPECT_EQ(X509_cmp(got.certificates[0].certificate.get(), f.rsa.get()), 0);
    EXPECT_TRUE(looks_like_certificates(file));
    write(file, "not a certificate");
    EXPECT_FALSE(looks_like_certificates(file));
    write(file, test::pem(*f.rsa));
    EXPECT_TRUE(looks_like_certificates(file));
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
} // namespace mailseal::seal::smime
