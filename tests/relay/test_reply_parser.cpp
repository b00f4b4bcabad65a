// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include <mailseal/relay/reply_parser.hpp>

namespace mailseal::relay {
namespace {

/// Feeds `bytes` in pieces of `step` octets and collects every reply (or error) the parser
/// yields.
std::vector<std::variant<peer_reply, std::string>> parse(std::string_view bytes, std::size_t step) {
    reply_parser parser;
    std::vector<std::variant<peer_reply, std::string>> out;
    while (!bytes.empty()) {
        auto piece = bytes.substr(0, step);
        parser.feed(piece);
        bytes.remove_prefix(piece.size());
        while (auto next = parser.next()) {
            bool error = std::holds_alternative<std::string>(*next);
            out.push_back(std::move(*next));
            if (error) {
                return out;
            }
        }
    }
    return out;
}

const peer_reply& only_reply(const std::vector<std::variant<peer_reply, std::string>>& replies) {
    EXPECT_EQ(replies.size(), 1u);
    return std::get<peer_reply>(replies.at(0));
}

TEST(ReplyParser, DovecotQuotaRefusalKeepsCodeEnhancedCodeAndText) {
    for (std::size_t step : {1u, 3u, 1000u}) {
        auto replies = parse("452 4.2.2 <bob@example.org> Quota exceeded (mailbox for user is "
                             "full)\r\n",
                             step);
        const auto& r = only_reply(replies);
        EXPECT_EQ(r.code, 452);
        ASSERT_TRUE(r.enhanced);
        EXPECT_EQ(r.enhanced->str(), "4.2.2");
        ASSERT_EQ(r.lines.size(), 1u);
        EXPECT_EQ(r.lines[0], "<bob@example.org> Quota exceeded (mailbox for user is full)");
        auto passed = r.to_reply();
        ASSERT_TRUE(passed);
        EXPECT_EQ(passed->render(),
                  "452 4.2.2 <bob@example.org> Quota exceeded (mailbox for user is full)\r\n");
    }
}

TEST(ReplyParser, MultiLineLhloReplyHasOneLinePerKeyword) {
    auto replies = parse("250-mail.example.org\r\n250-8BITMIME\r\n250-PIPELINING\r\n"
                         "250 ENHANCEDSTATUSCODES\r\n",
                         5);
    const auto& r = only_reply(replies);
    EXPECT_EQ(r.code, 250);
    EXPECT_FALSE(r.enhanced);
    EXPECT_EQ(r.lines, (std::vector<std::string>{"mail.example.org", "8BITMIME", "PIPELINING",
                                                 "ENHANCEDSTATUSCODES"}));
}

TEST(ReplyParser, PipelinedRepliesComeOutInOrder) {
    auto replies = parse("250 2.1.0 OK\r\n550 5.1.1 <x@example.org> User doesn't exist: "
                         "x@example.org\r\n554 5.5.1 No valid recipients\r\n",
                         7);
    ASSERT_EQ(replies.size(), 3u);
    EXPECT_EQ(std::get<peer_reply>(replies[0]).code, 250);
    EXPECT_EQ(std::get<peer_reply>(replies[1]).summary(),
              "550 5.1.1 <x@example.org> User doesn't exist: x@example.org");
    EXPECT_EQ(std::get<peer_reply>(replies[2]).code, 554);
}

TEST(ReplyParser, BareCodeAndBareLfAreReplies) {
    auto replies = parse("354\n", 1);
    const auto& r = only_reply(replies);
    EXPECT_EQ(r.code, 354);
    EXPECT_EQ(r.lines, std::vector<std::string>{""});
}

TEST(ReplyParser, EnhancedCodeOnlyWhenWellFormed) {
    EXPECT_EQ(parse_enhanced_code("5.1.1 text")->str(), "5.1.1");
    EXPECT_EQ(parse_enhanced_code("4.2.2")->str(), "4.2.2");
    EXPECT_EQ(parse_enhanced_code("2.123.456 x")->str(), "2.123.456");
    EXPECT_FALSE(parse_enhanced_code("3.1.1 text"));
    EXPECT_FALSE(parse_enhanced_code("5.1 text"));
    EXPECT_FALSE(parse_enhanced_code("5.1.1text"));
    EXPECT_FALSE(parse_enhanced_code("5.1234.1 text"));
    EXPECT_FALSE(parse_enhanced_code("Ok"));
}

TEST(ReplyParser, DisagreeingEnhancedClassIsDroppedWhenPassedOn) {
    auto replies = parse("550 4.2.2 odd\r\n", 100);
    auto passed = only_reply(replies).to_reply();
    ASSERT_TRUE(passed);
    EXPECT_EQ(passed->render(), "550 odd\r\n");
}

TEST(ReplyParser, ControlCharactersNeverReachOurClient) {
    auto replies = parse("451 4.3.0 bad\x01text\x7f\r\n", 100);
    auto passed = only_reply(replies).to_reply();
    ASSERT_TRUE(passed);
    EXPECT_EQ(passed->render(), "451 4.3.0 bad?text?\r\n");
}

TEST(ReplyParser, CodeOutsideTwoToFiveHundredIsNotPassedOn) {
    auto replies = parse("199 odd\r\n", 100);
    EXPECT_FALSE(only_reply(replies).to_reply());
}

TEST(ReplyParser, GarbageIsAnError) {
    for (std::string_view bad : {"hello\r\n", "25\r\n", "250x\r\n", "2a0 ok\r\n"}) {
        auto replies = parse(bad, 100);
        ASSERT_EQ(replies.size(), 1u) << bad;
        EXPECT_TRUE(std::holds_alternative<std::string>(replies[0])) << bad;
    }
}

TEST(ReplyParser, ChangingCodeWithinAReplyIsAnError) {
    auto replies = parse("250-one\r\n251 two\r\n", 100);
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(std::get<std::string>(replies[0]), "reply lines with different codes");
}

TEST(ReplyParser, OverlongLineIsAnErrorEvenWithoutLineEnd) {
    std::string endless = "250 " + std::string(reply_parser::max_line + 10, 'a');
    auto replies = parse(endless, 512);
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_TRUE(std::holds_alternative<std::string>(replies[0]));
}

TEST(ReplyParser, LongestLineIsAReplyWhereverTheReadsEnd) {
    // max_line octets before the CRLF: a read that ends between CR and LF must not make the
    // line look one octet too long.
    std::string longest = "250 " + std::string(reply_parser::max_line - 4, 'a') + "\r\n";
    for (std::size_t step : {longest.size() - 1, std::size_t{1000}, longest.size()}) {
        auto replies = parse(longest, step);
        ASSERT_EQ(replies.size(), 1u) << "step " << step;
        EXPECT_TRUE(std::holds_alternative<peer_reply>(replies[0])) << "step " << step;
    }
}

TEST(ReplyParser, EndlessContinuationIsAnError) {
    std::string lines;
    for (std::size_t i = 0; i <= reply_parser::max_lines; ++i) {
        lines += "250-more\r\n";
    }
    auto replies = parse(lines, 4096);
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_TRUE(std::holds_alternative<std::string>(replies[0]));
}

TEST(ReplyParser, AfterAnErrorOnlyTheErrorComesBack) {
    reply_parser parser;
    parser.feed("oops\r\n250 fine\r\n");
    auto first = parser.next();
    ASSERT_TRUE(first && std::holds_alternative<std::string>(*first));
    parser.feed("250 later\r\n");
    auto again = parser.next();
    ASSERT_TRUE(again && std::holds_alternative<std::string>(*again));
}

TEST(ReplyText, RelayedReplyNamingItsRecipientIsNotPrefixedTwice) {
    auto relayed = lmtp::reply::relayed(452, lmtp::enhanced_code{4, 2, 2},
                                        {"<bob@example.org> Quota exceeded"});
    ASSERT_TRUE(relayed);
    EXPECT_EQ(relayed->with_prefix("<bob@example.org> ").render(),
              "452 4.2.2 <bob@example.org> Quota exceeded\r\n");
    EXPECT_EQ(relayed->with_prefix("<alice@example.org> ").render(),
              "452 4.2.2 <alice@example.org> <bob@example.org> Quota exceeded\r\n");
}

} // namespace
} // namespace mailseal::relay
