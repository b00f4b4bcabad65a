// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include <gtest/gtest.h>

#include <mailseal/delivery/transaction.hpp>

namespace mailseal::delivery {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<fs::path> files_in(const fs::path& dir) {
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        out.push_back(e.path());
    }
    return out;
}

class transaction_test : public testing::Test {
protected:
    void SetUp() override {
        root_ = fs::temp_directory_path() / ("mailseal-txn-" + std::to_string(::getpid()));
        fs::remove_all(root_);
        fs::create_directories(root_);
        cfg_.local_domains = {"example.org"};
        cfg_.mailbox.maildir = (root_ / "%d/%n/Maildir").string();
        cfg_.server.hostname = "mx.example.org";
        env_.lhlo_name = "postfix.example.org";
        env_.sender = lmtp::address{"sender", "example.com"};
    }
    void TearDown() override { fs::remove_all(root_); }

    fs::path maildir(const std::string& user) { return root_ / "example.org" / user / "Maildir"; }

    transaction_info info() { return {"S1", "S1.1", "127.0.0.1", "mx.example.org"}; }

    /// Key discovery found nothing for anyone (an unsigned zone): copies are stored plain.
    static void without_keys(transaction& txn) {
        for (std::size_t i = 0; i < txn.recipients(); ++i) {
            txn.provide_keys(i, seal::key_set{dns::outcome::insecure, nullptr, {}});
        }
    }

    /// The envelope's recipients, normalised as verification does.
    std::vector<recipient::recipient> recipients() {
        std::vector<recipient::recipient> out;
        for (const auto& a : env_.recipients) {
            out.push_back(recipient::normalise(cfg_, a));
        }
        return out;
    }

    fs::path root_;
    config::config cfg_;
    lmtp::envelope env_;
    store::name_generator names_{"mx.example.org"};
};

TEST_F(transaction_test, delivers_each_recipient_with_trace_headers) {
    env_.recipients = {{"alice", "example.org"}, {"Bob+news", "example.org"}};
    transaction txn(cfg_, names_, env_, recipients(), info());
    without_keys(txn);
    txn.write("Subject: hi\r\n\r\nline one\r");
    txn.write("\nline two\r\n");
    txn.end_of_data();
    for (std::size_t i = 0; i < 2; ++i) {
        auto reply = txn.finish(i);
        EXPECT_EQ(reply.summary(), "250 2.0.0 Delivered") << "recipient " << i;
    }
    for (const auto& [user, rcpt] :
         {std::pair{"alice", "alice@example.org"}, std::pair{"bob", "Bob+news@example.org"}}) {
        auto delivered = files_in(maildir(user) / "new");
        ASSERT_EQ(delivered.size(), 1u) << user;
        EXPECT_TRUE(files_in(maildir(user) / "tmp").empty()) << user;
        auto content = read_file(delivered[0]);
        std::string want_start = std::string("Return-Path: <sender@example.com>\nDelivered-To: ") +
                                 rcpt + "\nReceived: from postfix.example.org (127.0.0.1)\n" +
                                 "\tby mx.example.org (mailseal) with LMTP id S1.1\n\tfor <" +
                                 rcpt + ">; ";
        EXPECT_NE(content.find("\nMailseal: plain; reason=no-key\nSubject: hi\n"),
                  std::string::npos)
            << content;
        EXPECT_EQ(content.substr(0, want_start.size()), want_start) << user;
        std::string want_end = "\nSubject: hi\n\nline one\nline two\n";
        ASSERT_GE(content.size(), want_end.size());
        EXPECT_EQ(content.substr(content.size() - want_end.size()), want_end) << user;
        auto name = delivered[0].filename().string();
        auto lines = static_cast<std::size_t>(std::count(content.begin(), content.end(), '\n'));
        EXPECT_NE(name.find(",S=" + std::to_string(content.size()) +
                            ",W=" + std::to_string(content.size() + lines)),
                  std::string::npos)
            << name;
    }
}

TEST_F(transaction_test, one_failing_recipient_does_not_affect_others) {
    env_.recipients = {
        {"alice", "example.org"}, {"broken", "example.org"}, {"carol", "example.org"}};
    fs::create_directories(maildir("broken"));
    for (const char* sub : {"cur", "new"}) {
        fs::create_directories(maildir("broken") / sub);
    }
    std::ofstream(maildir("broken") / "tmp") << "a file where tmp/ should be";
    transaction txn(cfg_, names_, env_, recipients(), info());
    without_keys(txn);
    txn.write("Subject: x\r\n\r\nbody\r\n");
    txn.end_of_data();
    EXPECT_EQ(txn.finish(0).summary(), "250 2.0.0 Delivered");
    EXPECT_EQ(txn.finish(1).summary(), "451 4.3.0 Temporary local problem, try again later");
    EXPECT_EQ(txn.finish(2).summary(), "250 2.0.0 Delivered");
    EXPECT_TRUE(files_in(maildir("broken") / "new").empty());
    EXPECT_EQ(files_in(maildir("carol") / "new").size(), 1u);
}

TEST_F(transaction_test, refused_missing_maildir_bounces) {
    cfg_.mailbox.on_missing = config::missing_maildir::refuse;
    env_.recipients = {{"ghost", "example.org"}};
    transaction txn(cfg_, names_, env_, recipients(), info());
    without_keys(txn);
    txn.write("x\r\n");
    txn.end_of_data();
    EXPECT_EQ(txn.finish(0).summary(), "550 5.1.1 No such user here");
    EXPECT_FALSE(fs::exists(maildir("ghost")));
}

TEST_F(transaction_test, abandon_leaves_nothing) {
    env_.recipients = {{"alice", "example.org"}};
    {
        transaction txn(cfg_, names_, env_, recipients(), info());
        without_keys(txn);
        txn.write("Subject: x\r\n\r\nfirst line\r\npartial");
        EXPECT_EQ(files_in(maildir("alice") / "tmp").size(), 1u);
        txn.abandon("test");
    }
    EXPECT_TRUE(files_in(maildir("alice") / "tmp").empty());
    EXPECT_TRUE(files_in(maildir("alice") / "new").empty());
}

TEST(trace_headers, null_sender_utf8_and_hostile_names) {
    lmtp::envelope env;
    env.lhlo_name = "evil\r\nX-Injected: yes";
    env.parameters.smtputf8 = true;
    transaction_info info{"S", "S.1", "unix", "mx"};
    auto headers = trace_headers(env, {"j\xc3\xbcrgen", "example.org"}, info,
                                 std::chrono::system_clock::time_point{});
    EXPECT_EQ(headers.rfind("Return-Path: <>\r\nDelivered-To: j\xc3\xbcrgen@example.org\r\n", 0),
              0u)
        << headers;
    EXPECT_NE(headers.find("with UTF8LMTP id S.1"), std::string::npos) << headers;
    EXPECT_EQ(headers.find("\r\nX-Injected"), std::string::npos) << headers;
    EXPECT_NE(headers.find("from evil??X-Injected: yes (unix)"), std::string::npos) << headers;
}

struct reply_case {
    std::string name;
    store::error_kind kind;
    config::quota_reply quota;
    std::string want;
};

class store_reply_test : public testing::TestWithParam<reply_case> {};

TEST_P(store_reply_test, maps_failure_to_reply) {
    const auto& c = GetParam();
    auto got = to_reply(store::failure{c.kind, 0, "step"}, c.quota).summary();
    EXPECT_EQ(got, c.want);
}

INSTANTIATE_TEST_SUITE_P(
    table, store_reply_test,
    testing::Values(reply_case{"disk_full", store::error_kind::no_space,
                               config::quota_reply::temporary,
                               "452 4.3.1 Insufficient system storage"},
                    reply_case{"quota_temporary", store::error_kind::over_quota,
                               config::quota_reply::temporary, "452 4.2.2 Mailbox is full"},
                    reply_case{"quota_permanent", store::error_kind::over_quota,
                               config::quota_reply::permanent, "552 5.2.2 Mailbox is full"},
                    reply_case{"permission", store::error_kind::permission,
                               config::quota_reply::temporary,
                               "451 4.3.0 Temporary local problem, try again later"},
                    reply_case{"io", store::error_kind::io, config::quota_reply::temporary,
                               "451 4.3.0 Temporary local problem, try again later"},
                    reply_case{"missing", store::error_kind::missing,
                               config::quota_reply::temporary, "550 5.1.1 No such user here"}),
    [](const auto& p) { return p.param.name; });

} // namespace
} // namespace mailseal::delivery
