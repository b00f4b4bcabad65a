// SPDX-License-Identifier: Apache-2.0
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include <mailseal/lmtp/address.hpp>

namespace mailseal::lmtp {
namespace {

std::string show(const std::optional<address>& a) {
    if (!a) {
        return "invalid";
    }
    return "local=" + ::testing::PrintToString(a->local_part) +
           " domain=" + ::testing::PrintToString(a->domain);
}

// A path `<local@domain>` with the local-part and one domain label of the given lengths.
std::string sized_path(std::size_t local, std::size_t label) {
    return '<' + std::string(local, 'l') + '@' + std::string(label, 'd') + ".example>";
}

// A path of exactly `total` octets (brackets included), made of 50-octet labels.
std::string path_of_length(std::size_t total) {
    std::string domain;
    const std::size_t domain_length = total - std::string("<u@>").size();
    while (domain.size() < domain_length) {
        if (!domain.empty()) {
            domain += '.';
        }
        domain += std::string(std::min<std::size_t>(50, domain_length - domain.size()), 'a');
    }
    if (domain.back() == '.') {
        domain.back() = 'b';
    }
    return "<u@" + domain + '>';
}

struct path_case {
    std::string name;
    std::string input;
    bool utf8;
    std::optional<address> want;
};

class forward_path_test : public ::testing::TestWithParam<path_case> {};

TEST_P(forward_path_test, parses) {
    const auto& c = GetParam();
    const auto got = parse_forward_path(c.input, c.utf8);
    EXPECT_EQ(got, c.want) << "input " << ::testing::PrintToString(c.input) << ": got " << show(got)
                           << ", want " << show(c.want);
}

const path_case forward_cases[] = {
    // RFC 5321 §4.1.2 Mailbox = Local-part "@" ( Domain / address-literal )
    {"simple", "<user@example.org>", false, address{"user", "example.org"}},
    {"dots_and_plus", "<first.last+tag@sub.example.org>", false,
     address{"first.last+tag", "sub.example.org"}},
    {"all_atext", "<!#$%&'*+-/=?^_`{|}~@example.org>", false,
     address{"!#$%&'*+-/=?^_`{|}~", "example.org"}},
    {"case_kept", "<User@Example.ORG>", false, address{"User", "Example.ORG"}},
    {"single_label", "<root@localhost>", false, address{"root", "localhost"}},
    {"digit_labels", "<u@123.4example>", false, address{"u", "123.4example"}},
    {"hyphen_inside_label", "<u@a-b--c.example>", false, address{"u", "a-b--c.example"}},
    // Quoted-string: the quotes and quoted-pair backslashes are removed.
    {"quoted_space", "<\"john smith\"@example.org>", false, address{"john smith", "example.org"}},
    {"quoted_pairs", "<\"a\\\"b\\\\c\"@x.org>", false, address{"a\"b\\c", "x.org"}},
    {"quoted_empty", "<\"\"@x.org>", false, address{"", "x.org"}},
    {"quoted_specials", "<\"a..b@<>\"@x.org>", false, address{"a..b@<>", "x.org"}},
    // address-literal
    {"ipv4_literal", "<u@[192.0.2.1]>", false, address{"u", "[192.0.2.1]"}},
    {"ipv4_literal_leading_zeros", "<u@[192.000.02.1]>", false, address{"u", "[192.000.02.1]"}},
    {"ipv6_literal", "<u@[IPv6:2001:db8::1]>", false, address{"u", "[IPv6:2001:db8::1]"}},
    {"ipv6_literal_tag_case", "<u@[ipv6:::ffff:192.0.2.1]>", false,
     address{"u", "[ipv6:::ffff:192.0.2.1]"}},
    // Source routes are accepted and dropped (RFC 5321 §4.1.1.3, Appendix C).
    {"source_route", "<@a.example,@b.example:u@c.example>", false, address{"u", "c.example"}},
    {"source_route_single", "<@a.example:u@c.example>", false, address{"u", "c.example"}},
    // RCPT TO:<Postmaster> has no domain (§4.1.1.3), in any case.
    {"postmaster", "<Postmaster>", false, address{"Postmaster", ""}},
    {"postmaster_upper", "<POSTMASTER>", false, address{"POSTMASTER", ""}},
    {"postmaster_with_domain", "<postmaster@example.org>", false,
     address{"postmaster", "example.org"}},
    // Length limits, §4.5.3.1.1-3 (and RFC 1035's 63-octet label).
    {"local_part_64", sized_path(64, 10), false,
     address{std::string(64, 'l'), std::string(10, 'd') + ".example"}},
    {"local_part_65", sized_path(65, 10), false, std::nullopt},
    {"quoted_local_part_64_with_quotes", "<\"" + std::string(62, 'q') + "\"@x.org>", false,
     address{std::string(62, 'q'), "x.org"}},
    {"quoted_local_part_65_with_quotes", "<\"" + std::string(63, 'q') + "\"@x.org>", false,
     std::nullopt},
    {"label_63", sized_path(1, 63), false, address{"l", std::string(63, 'd') + ".example"}},
    {"label_64", sized_path(1, 64), false, std::nullopt},
    {"path_256", path_of_length(256), false, address{"u", path_of_length(256).substr(3, 256 - 4)}},
    {"path_257", path_of_length(257), false, std::nullopt},
    // RFC 6531: UTF-8 only when allowed, and only well-formed.
    {"utf8_allowed", "<jürgen@bücher.example>", true, address{"jürgen", "bücher.example"}},
    {"utf8_quoted", "<\"ü x\"@example.org>", true, address{"ü x", "example.org"}},
    {"utf8_four_byte", "<\xf0\x9f\x93\xa7@example.org>", true,
     address{"\xf0\x9f\x93\xa7", "example.org"}},
    {"utf8_local_refused", "<jürgen@example.org>", false, std::nullopt},
    {"utf8_domain_refused", "<u@bücher.example>", false, std::nullopt},
    {"utf8_quoted_refused", "<\"ü\"@example.org>", false, std::nullopt},
    {"utf8_truncated", "<\xc3@example.org>", true, std::nullopt},
    {"utf8_bad_continuation", "<\xc3\x28@example.org>", true, std::nullopt},
    {"utf8_overlong", "<\xc0\xaf@example.org>", true, std::nullopt},
    {"utf8_surrogate", "<\xed\xa0\x80@example.org>", true, std::nullopt},
    {"utf8_above_10ffff", "<\xf4\x90\x80\x80@example.org>", true, std::nullopt},
    {"utf8_lone_continuation", "<\x80@example.org>", true, std::nullopt},
    // Syntax errors.
    {"empty", "", false, std::nullopt},
    {"no_brackets", "user@example.org", false, std::nullopt},
    {"null_path", "<>", false, std::nullopt},
    {"no_domain", "<user>", false, std::nullopt},
    {"empty_domain", "<user@>", false, std::nullopt},
    {"empty_local", "<@example.org>", false, std::nullopt},
    {"two_ats", "<a@b@example.org>", false, std::nullopt},
    {"leading_dot", "<.user@x.org>", false, std::nullopt},
    {"trailing_dot", "<user.@x.org>", false, std::nullopt},
    {"double_dot", "<us..er@x.org>", false, std::nullopt},
    {"space_in_local", "<us er@x.org>", false, std::nullopt},
    {"domain_double_dot", "<u@x..org>", false, std::nullopt},
    {"domain_leading_dot", "<u@.x.org>", false, std::nullopt},
    {"domain_trailing_dot", "<u@x.org.>", false, std::nullopt},
    {"label_leading_hyphen", "<u@-x.org>", false, std::nullopt},
    {"label_trailing_hyphen", "<u@x-.org>", false, std::nullopt},
    {"underscore_in_domain", "<u@x_y.org>", false, std::nullopt},
    {"missing_close", "<u@x.org", false, std::nullopt},
    {"trailing_garbage", "<u@x.org>x", false, std::nullopt},
    {"double_close", "<u@x.org>>", false, std::nullopt},
    {"unterminated_quote", "<\"abc@x.org>", false, std::nullopt},
    {"quoted_tab", "<\"a\tb\"@x.org>", false, std::nullopt},
    {"quoted_pair_control", "<\"a\\\x01\"@x.org>", false, std::nullopt},
    {"quoted_then_text", "<\"a\"b@x.org>", false, std::nullopt},
    {"ipv4_octet_256", "<u@[192.0.2.256]>", false, std::nullopt},
    {"ipv4_three_parts", "<u@[192.0.2]>", false, std::nullopt},
    {"ipv4_five_parts", "<u@[192.0.2.1.5]>", false, std::nullopt},
    {"ipv4_four_digits", "<u@[0192.0.2.1]>", false, std::nullopt},
    {"ipv4_empty_part", "<u@[192..2.1]>", false, std::nullopt},
    {"ipv6_bad", "<u@[IPv6:2001:db8::g]>", false, std::nullopt},
    {"ipv6_nul", std::string("<u@[IPv6:::1\0x]>", 16), false, std::nullopt},
    {"ipv6_without_tag", "<u@[2001:db8::1]>", false, std::nullopt},
    {"general_literal", "<u@[x400:c=us]>", false, std::nullopt},
    {"empty_literal", "<u@[]>", false, std::nullopt},
    {"unclosed_literal", "<u@[192.0.2.1>", false, std::nullopt},
    {"literal_then_text", "<u@[192.0.2.1]x>", false, std::nullopt},
    {"source_route_without_mailbox", "<@a.example:>", false, std::nullopt},
    {"source_route_without_colon", "<@a.example u@x.org>", false, std::nullopt},
    {"source_route_empty_domain", "<@:u@x.org>", false, std::nullopt},
    {"postmaster_with_route", "<@a.example:Postmaster>", false, std::nullopt},
    {"postmaster_empty_domain", "<Postmaster@>", false, std::nullopt},
    {"nul_in_local", std::string("<u\0v@x.org>", 11), false, std::nullopt},
};

INSTANTIATE_TEST_SUITE_P(address, forward_path_test, ::testing::ValuesIn(forward_cases),
                         [](const auto& test) { return test.param.name; });

TEST(reverse_path, table) {
    const struct {
        std::string input;
        std::optional<reverse_path> want;
    } table[] = {
        {"<>", reverse_path{}},
        {"<a@example.org>", reverse_path{address{"a", "example.org"}}},
        {"<@relay.example:a@example.org>", reverse_path{address{"a", "example.org"}}},
        // <Postmaster> without a domain is only a forward-path (RFC 5321 §4.1.1.3).
        {"<Postmaster>", std::nullopt},
        {"", std::nullopt},
        {"<<>>", std::nullopt},
        {"< >", std::nullopt},
        {"<jürgen@example.org>", std::nullopt},
    };
    for (const auto& row : table) {
        const auto got = parse_reverse_path(row.input, false);
        EXPECT_EQ(got, row.want) << "input " << row.input << ": got "
                                 << (got ? (*got ? show(**got) : "null sender") : "invalid");
    }
    EXPECT_EQ(parse_reverse_path("<jürgen@example.org>", true),
              std::optional<reverse_path>(reverse_path{address{"jürgen", "example.org"}}));
}

TEST(address, str_requotes_when_needed) {
    const struct {
        address input;
        std::string want;
    } table[] = {
        {{"a", "b.example"}, "a@b.example"},
        {{"first.last", "b"}, "first.last@b"},
        {{"john smith", "x"}, "\"john smith\"@x"},
        {{"a\"b\\c", "x"}, "\"a\\\"b\\\\c\"@x"},
        {{"", "x"}, "\"\"@x"},
        {{".a", "x"}, "\".a\"@x"},
        {{"a.", "x"}, "\"a.\"@x"},
        {{"a..b", "x"}, "\"a..b\"@x"},
        {{"a@b", "x"}, "\"a@b\"@x"},
        {{"jürgen", "bücher.example"}, "jürgen@bücher.example"},
        {{"Postmaster", ""}, "Postmaster"},
        {{"u", "[192.0.2.1]"}, "u@[192.0.2.1]"},
    };
    for (const auto& row : table) {
        EXPECT_EQ(row.input.str(), row.want) << "got " << row.input.str() << ", want " << row.want;
    }
}

TEST(address, str_round_trips_through_the_parser) {
    const std::string inputs[] = {"<\"john smith\"@x.org>", "<\"a\\\"b\\\\c\"@x.org>",
                                  "<plain@x.org>", "<\"\"@x.org>"};
    for (const auto& input : inputs) {
        const auto parsed = parse_forward_path(input, false);
        ASSERT_TRUE(parsed) << input;
        EXPECT_EQ('<' + parsed->str() + '>', input);
        EXPECT_EQ(parse_forward_path('<' + parsed->str() + '>', false), parsed);
    }
}

TEST(address, is_utf8) {
    const struct {
        address input;
        bool want;
    } table[] = {
        {{"a", "b"}, false},
        {{"jürgen", "b"}, true},
        {{"a", "bücher.example"}, true},
        {{"Postmaster", ""}, false},
    };
    for (const auto& row : table) {
        EXPECT_EQ(row.input.is_utf8(), row.want) << row.input.str();
    }
}

struct parameters_case {
    std::string name;
    std::string input;
    std::variant<mail_parameters, parameter_error> want;
};

std::string show(const std::variant<mail_parameters, parameter_error>& v) {
    if (const auto* e = std::get_if<parameter_error>(&v)) {
        switch (*e) {
        case parameter_error::syntax:
            return "error syntax";
        case parameter_error::unknown:
            return "error unknown";
        case parameter_error::duplicate:
            return "error duplicate";
        }
    }
    const auto& p = std::get<mail_parameters>(v);
    return "size=" + (p.size ? std::to_string(*p.size) : std::string("none")) +
           " body=" + std::string(to_string(p.body)) + " smtputf8=" + (p.smtputf8 ? "1" : "0");
}

bool same(const std::variant<mail_parameters, parameter_error>& a,
          const std::variant<mail_parameters, parameter_error>& b) {
    if (a.index() != b.index()) {
        return false;
    }
    if (a.index() == 1) {
        return std::get<1>(a) == std::get<1>(b);
    }
    const auto& x = std::get<0>(a);
    const auto& y = std::get<0>(b);
    return x.size == y.size && x.body == y.body && x.smtputf8 == y.smtputf8;
}

class mail_parameters_test : public ::testing::TestWithParam<parameters_case> {};

TEST_P(mail_parameters_test, parses) {
    const auto& c = GetParam();
    const auto got = parse_mail_parameters(c.input);
    EXPECT_TRUE(same(got, c.want)) << "input " << ::testing::PrintToString(c.input) << ": got "
                                   << show(got) << ", want " << show(c.want);
}

mail_parameters params(std::optional<std::uint64_t> size, body_type body, bool smtputf8) {
    mail_parameters p;
    p.size = size;
    p.body = body;
    p.smtputf8 = smtputf8;
    return p;
}

const parameters_case parameter_cases[] = {
    {"none", "", params(std::nullopt, body_type::unspecified, false)},
    {"size", "SIZE=100", params(100, body_type::unspecified, false)},
    {"size_zero", "size=0", params(0, body_type::unspecified, false)},
    {"size_saturates", "SIZE=99999999999999999999",
     params(std::numeric_limits<std::uint64_t>::max(), body_type::unspecified, false)},
    {"size_max", "SIZE=18446744073709551615",
     params(std::numeric_limits<std::uint64_t>::max(), body_type::unspecified, false)},
    {"body_8bitmime", "BODY=8BITMIME", params(std::nullopt, body_type::eight_bit_mime, false)},
    {"body_7bit_lowercase", "body=7bit", params(std::nullopt, body_type::seven_bit, false)},
    {"smtputf8", "SMTPUTF8", params(std::nullopt, body_type::unspecified, true)},
    {"all_with_extra_spaces", "  SIZE=1   BODY=7BIT  SmtpUtf8 ",
     params(1, body_type::seven_bit, true)},
    {"size_without_value", "SIZE", parameter_error::syntax},
    {"size_empty", "SIZE=", parameter_error::syntax},
    {"size_negative", "SIZE=-1", parameter_error::syntax},
    {"size_not_a_number", "SIZE=1a", parameter_error::syntax},
    {"size_21_digits", "SIZE=123456789012345678901", parameter_error::syntax},
    {"body_binarymime", "BODY=BINARYMIME", parameter_error::syntax},
    {"body_without_value", "BODY", parameter_error::syntax},
    {"smtputf8_with_value", "SMTPUTF8=1", parameter_error::syntax},
    {"keyword_starts_with_hyphen", "-X=1", parameter_error::syntax},
    {"keyword_bad_character", "X_Y=1", parameter_error::syntax},
    {"value_with_equals", "X=b=c", parameter_error::syntax},
    {"value_control_character", "X=a\x01", parameter_error::syntax},
    {"unknown_empty_value", "X=", parameter_error::syntax},
    {"duplicate_size", "SIZE=1 SIZE=1", parameter_error::duplicate},
    {"duplicate_body", "BODY=7BIT body=8BITMIME", parameter_error::duplicate},
    {"duplicate_smtputf8", "SMTPUTF8 SMTPUTF8", parameter_error::duplicate},
    {"unknown_auth", "AUTH=<>", parameter_error::unknown},
    {"unknown_ret", "SIZE=1 RET=FULL", parameter_error::unknown},
    {"unknown_without_value", "XYZ", parameter_error::unknown},
    {"first_error_wins", "SIZE=x RET=FULL", parameter_error::syntax},
};

INSTANTIATE_TEST_SUITE_P(address, mail_parameters_test, ::testing::ValuesIn(parameter_cases),
                         [](const auto& test) { return test.param.name; });

TEST(body_type, names) {
    EXPECT_EQ(to_string(body_type::unspecified), "unspecified");
    EXPECT_EQ(to_string(body_type::seven_bit), "7BIT");
    EXPECT_EQ(to_string(body_type::eight_bit_mime), "8BITMIME");
}

} // namespace
} // namespace mailseal::lmtp
