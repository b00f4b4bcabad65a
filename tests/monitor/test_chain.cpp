// SPDX-License-Identifier: Apache-2.0
#include <fstream>

#include <gtest/gtest.h>

#include <mailseal/monitor/chain.hpp>

#include "test_certs.hpp"

namespace mailseal::monitor {
namespace {

namespace t = seal::smime::test;

TEST(PostfixChainFiles, ChainFilesWinOverLegacyCertificates) {
    EXPECT_EQ(postfix_chain_files({"/etc/a.pem, /etc/b.pem", "/etc/old.pem", "", ""}, "", 25, {}),
              (std::vector<std::string>{"/etc/a.pem", "/etc/b.pem"}));
}

TEST(PostfixChainFiles, LegacyRsaAndEcdsaCertificates) {
    EXPECT_EQ(postfix_chain_files({"", "/etc/rsa.pem", "/etc/ec.pem", ""}, "", 25, {}),
              (std::vector<std::string>{"/etc/rsa.pem", "/etc/ec.pem"}));
    EXPECT_EQ(postfix_chain_files({"", "/etc/rsa.pem", "none", ""}, "", 25, {}),
              (std::vector<std::string>{"/etc/rsa.pem"}));
    EXPECT_TRUE(postfix_chain_files({"", "", "", ""}, "", 25, {}).empty());
}

TEST(PostfixChainFiles, MasterOverridesOfTheServiceOnThePort) {
    std::string overrides = "submission/inet/smtpd_tls_chain_files = /etc/submission.pem\n"
                            "relay/unix/syslog_name = postfix/relay\n"
                            "127.0.0.1:smtp/inet/smtpd_tls_chain_files = /etc/mx.pem\n";
    std::vector<std::string> main{"/etc/main.pem", "", "", ""};
    EXPECT_EQ(postfix_chain_files(main, overrides, 25, {"smtp", "mail"}),
              (std::vector<std::string>{"/etc/mx.pem"}));
    EXPECT_EQ(postfix_chain_files(main, overrides, 587, {"submission"}),
              (std::vector<std::string>{"/etc/submission.pem"}));
    EXPECT_EQ(
        postfix_chain_files(main, "2525/inet/smtpd_tls_cert_file = /etc/x.pem\n", 25, {"smtp"}),
        (std::vector<std::string>{"/etc/main.pem"}));
    // An override that empties the chain files lets the legacy files of the service count.
    EXPECT_EQ(postfix_chain_files(main,
                                  "smtp/inet/smtpd_tls_chain_files =\n"
                                  "smtp/inet/smtpd_tls_cert_file = /etc/b.pem\n",
                                  25, {"smtp"}),
              (std::vector<std::string>{"/etc/b.pem"}));
    // Behind postscreen, port 25's sessions go to "smtpd pass".
    EXPECT_EQ(postfix_chain_files(main, "smtpd/pass/smtpd_tls_chain_files = /etc/pass.pem\n", 25,
                                  {"smtp"}),
              (std::vector<std::string>{"/etc/pass.pem"}));
    // An override of a legacy parameter does not hide main.cf's chain files.
    EXPECT_EQ(postfix_chain_files({"", "/etc/rsa.pem", "", ""},
                                  "2525/inet/smtpd_tls_cert_file = /etc/other.pem\n", 2525, {}),
              (std::vector<std::string>{"/etc/other.pem"}));
}

TEST(SplitChains, EachCertificateNotIssuingThePreviousStartsAChain) {
    auto root_key = t::generate("EC", "P-256");
    auto root = t::make_cert({.key = root_key, .common_name = "Root", .emails = {}, .ca = true});
    auto inter_key = t::generate("EC", "P-256");
    auto inter = t::make_cert({.key = inter_key,
                               .common_name = "Inter",
                               .emails = {},
                               .ca = true,
                               .issuer = root,
                               .signer = root_key});
    auto rsa_leaf = t::make_cert({.key = t::fixed_key(t::rsa2048_first_pem),
                                  .common_name = "mx rsa",
                                  .emails = {},
                                  .issuer = inter,
                                  .signer = inter_key});
    auto ec_leaf = t::make_cert({.key = t::generate("EC", "P-256"),
                                 .common_name = "mx ec",
                                 .emails = {},
                                 .issuer = inter,
                                 .signer = inter_key});
    auto chains = split_chains("f", {rsa_leaf, inter, ec_leaf, inter, root});
    ASSERT_EQ(chains.size(), 2u);
    EXPECT_EQ(chains[0].certificates, (std::vector<std::shared_ptr<X509>>{rsa_leaf, inter}));
    EXPECT_EQ(chains[1].certificates, (std::vector<std::shared_ptr<X509>>{ec_leaf, inter, root}));
    EXPECT_EQ(chains[1].source, "f");
}

TEST(ReadChains, SkipsThePrivateKeyOfAChainFile) {
    auto key = t::generate("EC", "P-256");
    auto cert = t::make_cert({.key = key, .common_name = "mx", .emails = {}});
    auto file = std::filesystem::temp_directory_path() / "mailseal-test-chain.pem";
    {
        std::ofstream out(file);
        out << t::private_key_pem(*key) << t::pem(*cert);
    }
    auto read = read_chains(file);
    std::filesystem::remove(file);
    ASSERT_EQ(read.index(), 0u) << std::get<1>(read);
    auto& chains = std::get<0>(read);
    ASSERT_EQ(chains.size(), 1u);
    EXPECT_EQ(X509_cmp(chains[0].certificates.at(0).get(), cert.get()), 0);
    EXPECT_EQ(read_chains("/nonexistent/chain.pem").index(), 1u);
}

} // namespace
} // namespace mailseal::monitor
