// SPDX-License-Identifier: Apache-2.0
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/lmtp/reply.hpp>

namespace mailseal::lmtp {
namespace {

struct render_case {
    std::string name;
    reply input;
    std::string want;
};

class render_test : public ::testing::TestWithParam<render_case> {};

TEST_P(render_test, renders) {
    const auto& c = GetParam();
    const std::string got = c.input.render();
    EXPECT_EQ(got, c.want) << "got " << ::testing::PrintToString(got) << ", want "
                           << ::testing::PrintToString(c.want);
}

INSTANTIATE_TEST_SUITE_P(
    reply, render_test,
    ::testing::Values(
        render_case{"status_text", replies::ok, "250 2.0.0 Ok\r\n"},
        render_case{"other_text", reply(replies::unknown_recipient, "No such user: bob"),
                    "550 5.1.1 No such user: bob\r\n"},
        render_case{"no_enhanced_code", reply(replies::greeting, "mx.example.org LMTP ready"),
                    "220 mx.example.org LMTP ready\r\n"},
        render_case{"start_data", replies::start_data, "354 End data with <CR><LF>.<CR><LF>\r\n"},
        render_case{"multiline_lhlo",
                    reply(replies::lhlo,
                          std::vector<std::string>{"mx.example.org", "PIPELINING", "SIZE 100"}),
                    "250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 100\r\n"},
        render_case{"multiline_with_enhanced_code",
                    reply(replies::local_error, std::vector<std::string>{"first", "second"}),
                    "451-4.3.0 first\r\n451 4.3.0 second\r\n"},
        render_case{"empty_lines_fall_back_to_status_text",
                    reply(replies::closing, std::vector<std::string>{}), "221 2.0.0 Bye\r\n"},
        render_case{"empty_text_without_enhanced_code", replies::lhlo, "250\r\n"},
        render_case{"empty_text_with_enhanced_code", reply(replies::ok, ""), "250 2.0.0\r\n"},
        render_case{"line_breaks_in_text_are_neutralized",
                    reply(replies::local_error, "a\r\n250 2.0.0 forged\nb\rc"),
                    "451 4.3.0 a  250 2.0.0 forged b c\r\n"},
        render_case{"prefixed", reply(replies::delivered).with_prefix("<a@b> "),
                    "250 2.0.0 <a@b> Delivered\r\n"},
        render_case{
            "prefixed_multiline",
            reply(replies::local_error, std::vector<std::string>{"x", "y"}).with_prefix("<a@b> "),
            "451-4.3.0 <a@b> x\r\n451 4.3.0 <a@b> y\r\n"}),
    [](const auto& test) { return test.param.name; });

TEST(reply, summary_is_first_line) {
    const struct {
        reply input;
        std::string want;
    } table[] = {
        {replies::delivered, "250 2.0.0 Delivered"},
        {reply(replies::greeting, "mx LMTP"), "220 mx LMTP"},
        {reply(replies::local_error, std::vector<std::string>{"one", "two"}), "451 4.3.0 one"},
        {reply(replies::ok, ""), "250 2.0.0"},
    };
    for (const auto& row : table) {
        EXPECT_EQ(row.input.summary(), row.want)
            << "got " << row.input.summary() << ", want " << row.want;
    }
}

TEST(reply, accessors) {
    const reply r(replies::over_quota_temporary);
    EXPECT_EQ(r.code(), 452);
    EXPECT_EQ(r.enhanced(), (enhanced_code{4, 2, 2}));
    EXPECT_EQ(r.text(), "Mailbox is full");
    EXPECT_TRUE(r.transient());
    EXPECT_FALSE(r.positive());
    EXPECT_FALSE(r.permanent());
    EXPECT_TRUE(reply(replies::delivered).positive());
    EXPECT_TRUE(reply(replies::over_quota_permanent).permanent());
    EXPECT_EQ(reply(replies::delivered).with_prefix("<x@y> ").text(), "<x@y> Delivered");
}

TEST(enhanced_code, str) {
    const struct {
        enhanced_code input;
        std::string want;
    } table[] = {
        {{2, 0, 0}, "2.0.0"},
        {{4, 5, 3}, "4.5.3"},
        {{5, 7, 26}, "5.7.26"},
        {{5, 123, 456}, "5.123.456"},
    };
    for (const auto& row : table) {
        EXPECT_EQ(row.input.str(), row.want) << "got " << row.input.str() << ", want " << row.want;
    }
}

// Every named reply: the consteval constructor already checked code range and class; here
// the table is checked for kinds that are easy to mix up.
TEST(replies, table) {
    const struct {
        const char* name;
        status s;
        int code;
        const char* enh; // "" for none
    } table[] = {
        {"greeting", replies::greeting, 220, ""},
        {"lhlo", replies::lhlo, 250, ""},
        {"closing", replies::closing, 221, "2.0.0"},
        {"too_many_connections", replies::too_many_connections, 421, "4.7.0"},
        {"timeout", replies::timeout, 421, "4.4.2"},
        {"shutting_down", replies::shutting_down, 421, "4.3.2"},
        {"ok", replies::ok, 250, "2.0.0"},
        {"sender_ok", replies::sender_ok, 250, "2.1.0"},
        {"recipient_ok", replies::recipient_ok, 250, "2.1.5"},
        {"cannot_vrfy", replies::cannot_vrfy, 252, "2.5.0"},
        {"start_data", replies::start_data, 354, ""},
        {"delivered", replies::delivered, 250, "2.0.0"},
        {"unknown_command", replies::unknown_command, 500, "5.5.1"},
        {"use_lhlo", replies::use_lhlo, 500, "5.5.1"},
        {"line_too_long", replies::line_too_long, 500, "5.5.2"},
        {"bad_command_syntax", replies::bad_command_syntax, 500, "5.5.2"},
        {"syntax_error", replies::syntax_error, 501, "5.5.4"},
        {"bad_sender_syntax", replies::bad_sender_syntax, 501, "5.1.7"},
        {"bad_recipient_syntax", replies::bad_recipient_syntax, 501, "5.1.3"},
        {"bad_sequence", replies::bad_sequence, 503, "5.5.1"},
        {"no_valid_recipients", replies::no_valid_recipients, 503, "5.5.1"},
        {"unknown_parameter", replies::unknown_parameter, 555, "5.5.4"},
        {"smtputf8_required", replies::smtputf8_required, 553, "5.6.7"},
        {"unknown_recipient", replies::unknown_recipient, 550, "5.1.1"},
        {"too_many_recipients", replies::too_many_recipients, 452, "4.5.3"},
        {"message_too_big", replies::message_too_big, 552, "5.3.4"},
        {"data_line_too_long", replies::data_line_too_long, 554, "5.6.0"},
        {"disk_full", replies::disk_full, 452, "4.3.1"},
        {"over_quota_temporary", replies::over_quota_temporary, 452, "4.2.2"},
        {"over_quota_permanent", replies::over_quota_permanent, 552, "5.2.2"},
        {"local_error", replies::local_error, 451, "4.3.0"},
        {"mailbox_unavailable", replies::mailbox_unavailable, 451, "4.2.0"},
    };
    std::set<std::tuple<int, std::string, std::string>> seen;
    for (const auto& row : table) {
        const std::string enh = row.s.enhanced() ? row.s.enhanced()->str() : "";
        EXPECT_EQ(row.s.code(), row.code) << row.name;
        EXPECT_EQ(enh, row.enh) << row.name << ": got " << enh << ", want " << row.enh;
        const bool fresh = seen.emplace(row.s.code(), enh, std::string(row.s.text())).second;
        EXPECT_TRUE(fresh) << row.name << " duplicates another reply";
        // Only the greeting, the LHLO reply (both exempt under RFC 2034 §3) and the
        // intermediate 354 go without an enhanced code.
        EXPECT_EQ(enh.empty(), row.code == 220 || row.code == 354 || row.s.text().empty())
            << row.name;
    }
}

} // namespace
} // namespace mailseal::lmtp
