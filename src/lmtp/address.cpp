// SPDX-License-Identifier: Apache-2.0
#include <arpa/inet.h>
#include <limits>

#include <mailseal/lmtp/address.hpp>
#include <mailseal/util/ascii.hpp>

namespace mailseal::lmtp {

using util::iequals;

namespace {

// RFC 5321 §4.5.3.1.1-3.
constexpr std::size_t max_local_part = 64;
constexpr std::size_t max_domain = 255;
constexpr std::size_t max_path = 256;
// RFC 1035 §2.3.4; applied to ASCII labels only, since a U-label's limit is that of its A-label.
constexpr std::size_t max_label = 63;

bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_ascii(char c) {
    return static_cast<unsigned char>(c) < 0x80;
}

// RFC 5322 §3.2.3 atext, which RFC 5321 §4.1.2 uses for Atom.
bool is_atext(char c) {
    if (is_alpha(c) || is_digit(c)) {
        return true;
    }
    constexpr std::string_view specials = "!#$%&'*+-/=?^_`{|}~";
    return specials.find(c) != std::string_view::npos;
}

// RFC 5321 §4.1.2: qtextSMTP = %d32-33 / %d35-91 / %d93-126 (everything printable but '"' and
// '\').
bool is_qtext(char c) {
    return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

// Length of the well-formed UTF-8 sequence for one non-ASCII character at s[i], or 0. RFC 6531
// §3.3 admits UTF8-non-ascii as defined by RFC 6532 §3.1, i.e. RFC 3629 §4: no overlong forms,
// no surrogates, nothing above U+10FFFF.
std::size_t utf8_length(std::string_view s, std::size_t i) {
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    auto tail = [&](std::size_t k, unsigned lo, unsigned hi) {
        return k < s.size() && byte(k) >= lo && byte(k) <= hi;
    };
    const unsigned b0 = byte(i);
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        return tail(i + 1, 0x80, 0xBF) ? 2 : 0;
    }
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        const unsigned lo = b0 == 0xE0 ? 0xA0 : 0x80;
        const unsigned hi = b0 == 0xED ? 0x9F : 0xBF;
        return tail(i + 1, lo, hi) && tail(i + 2, 0x80, 0xBF) ? 3 : 0;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        const unsigned lo = b0 == 0xF0 ? 0x90 : 0x80;
        const unsigned hi = b0 == 0xF4 ? 0x8F : 0xBF;
        return tail(i + 1, lo, hi) && tail(i + 2, 0x80, 0xBF) && tail(i + 3, 0x80, 0xBF) ? 4 : 0;
    }
    return 0;
}

// A cursor over one path; every parse_ function either consumes what it recognised and returns
// true, or returns false (the caller then rejects the whole path).
class path_parser {
public:
    path_parser(std::string_view text, bool utf8) : text_(text), utf8_(utf8) {}

    bool at_end() const { return pos_ == text_.size(); }
    bool peek(char c) const { return pos_ < text_.size() && text_[pos_] == c; }
    bool take(char c) {
        if (!peek(c)) {
            return false;
        }
        ++pos_;
        return true;
    }
    std::size_t pos() const { return pos_; }
    std::string_view slice(std::size_t from) const { return text_.substr(from, pos_ - from); }

    // One UTF8-non-ascii character when allowed (RFC 6531 §3.3 adds it to atext, qtextSMTP and
    // sub-domain).
    bool take_utf8() {
        if (!utf8_ || pos_ >= text_.size() || is_ascii(text_[pos_])) {
            return false;
        }
        const std::size_t n = utf8_length(text_, pos_);
        pos_ += n;
        return n != 0;
    }

    // Dot-string = Atom *("." Atom); Atom = 1*atext
    bool parse_dot_string(std::string& out) {
        const std::size_t start = pos_;
        for (;;) {
            const std::size_t atom = pos_;
            while (pos_ < text_.size()) {
                if (is_atext(text_[pos_])) {
                    ++pos_;
                } else if (!take_utf8()) {
                    break;
                }
            }
            if (pos_ == atom) {
                return false;
            }
            if (!take('.')) {
                break;
            }
        }
        out = slice(start);
        return true;
    }

    // Quoted-string = DQUOTE *QcontentSMTP DQUOTE; quoted-pairSMTP = %d92 %d32-126
    // `out` receives the content with the quoting removed.
    bool parse_quoted_string(std::string& out) {
        if (!take('"')) {
            return false;
        }
        out.clear();
        while (pos_ < text_.size()) {
            const char c = text_[pos_];
            if (c == '"') {
                ++pos_;
                return true;
            }
            if (c == '\\') {
                if (pos_ + 1 >= text_.size() || text_[pos_ + 1] < 32 || text_[pos_ + 1] > 126) {
                    return false;
                }
                out.push_back(text_[pos_ + 1]);
                pos_ += 2;
            } else if (is_qtext(c)) {
                out.push_back(c);
                ++pos_;
            } else {
                const std::size_t start = pos_;
                if (!take_utf8()) {
                    return false;
                }
                out.append(slice(start));
            }
        }
        return false;
    }

    // Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str]
    // Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig
    bool parse_domain() {
        for (;;) {
            const std::size_t label = pos_;
            bool ascii = true;
            bool last_hyphen = false;
            while (pos_ < text_.size()) {
                const char c = text_[pos_];
                if (is_alpha(c) || is_digit(c)) {
                    last_hyphen = false;
                    ++pos_;
                } else if (c == '-' && pos_ != label) {
                    last_hyphen = true;
                    ++pos_;
                } else if (take_utf8()) {
                    ascii = false;
                    last_hyphen = false;
                } else {
                    break;
                }
            }
            if (pos_ == label || last_hyphen || (ascii && pos_ - label > max_label)) {
                return false;
            }
            if (!take('.')) {
                return true;
            }
        }
    }

    // address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
    //                         General-address-literal ) "]"
    // General-address-literal needs a Standardized-tag registered with IANA; only IPv6 is, so
    // anything else is refused.
    bool parse_address_literal() {
        if (!take('[')) {
            return false;
        }
        const std::size_t close = text_.find(']', pos_);
        if (close == std::string_view::npos) {
            return false;
        }
        const std::string_view inside = text_.substr(pos_, close - pos_);
        pos_ = close + 1;
        constexpr std::string_view ipv6_tag = "IPv6:";
        if (inside.size() > ipv6_tag.size() &&
            iequals(inside.substr(0, ipv6_tag.size()), ipv6_tag)) {
            // IPv6-addr (RFC 5321 §4.1.3) is the text form inet_pton(3) reads: full, compressed
            // and with a trailing dotted IPv4 part.
            // Only hex digits, ':' and '.' can occur; checking first also keeps a NUL from
            // cutting the string short for inet_pton.
            const std::string addr(inside.substr(ipv6_tag.size()));
            if (addr.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) {
                return false;
            }
            unsigned char buf[16];
            return inet_pton(AF_INET6, addr.c_str(), buf) == 1;
        }
        return is_ipv4(inside);
    }

    // IPv4-address-literal = Snum 3("." Snum); Snum = 1*3DIGIT, value 0 through 255.
    static bool is_ipv4(std::string_view s) {
        int parts = 0;
        std::size_t i = 0;
        for (;;) {
            std::size_t digits = 0;
            int value = 0;
            while (i < s.size() && is_digit(s[i]) && digits < 3) {
                value = value * 10 + (s[i] - '0');
                ++i;
                ++digits;
            }
            if (digits == 0 || value > 255) {
                return false;
            }
            ++parts;
            if (i == s.size()) {
                return parts == 4;
            }
            if (s[i] != '.' || parts == 4) {
                return false;
            }
            ++i;
        }
    }

private:
    std::string_view text_;
    bool utf8_;
    std::size_t pos_ = 0;
};

// Path = "<" [ A-d-l ":" ] Mailbox ">"
// A-d-l = At-domain *( "," At-domain ); At-domain = "@" Domain
// Mailbox = Local-part "@" ( Domain / address-literal )
std::optional<address> parse_path(std::string_view path, bool utf8_allowed, bool postmaster) {
    if (path.size() > max_path) {
        return std::nullopt;
    }
    // RFC 5321 §4.1.1.3: "RCPT TO:<Postmaster>" without a domain must be accepted. It is
    // matched in any case, since clients write it in several.
    if (postmaster && iequals(path, "<Postmaster>")) {
        return address{std::string(path.substr(1, path.size() - 2)), ""};
    }
    path_parser p(path, utf8_allowed);
    if (!p.take('<')) {
        return std::nullopt;
    }
    // RFC 5321 §3.6.1 and Appendix C: source routes are obsolete; servers SHOULD accept them and
    // MAY ignore them, which is what happens here once they have parsed.
    if (p.peek('@')) {
        do {
            if (!p.take('@') || !p.parse_domain()) {
                return std::nullopt;
            }
        } while (p.take(','));
        if (!p.take(':')) {
            return std::nullopt;
        }
    }
    address a;
    const std::size_t local_start = p.pos();
    if (p.peek('"') ? !p.parse_quoted_string(a.local_part) : !p.parse_dot_string(a.local_part)) {
        return std::nullopt;
    }
    if (p.pos() - local_start > max_local_part || !p.take('@')) {
        return std::nullopt;
    }
    const std::size_t domain_start = p.pos();
    if (p.peek('[') ? !p.parse_address_literal() : !p.parse_domain()) {
        return std::nullopt;
    }
    a.domain = std::string(p.slice(domain_start));
    if (a.domain.size() > max_domain || !p.take('>') || !p.at_end()) {
        return std::nullopt;
    }
    return a;
}

// True when `local` can be written as a Dot-string, i.e. needs no quotes. Non-ASCII octets
// count as atext: a local part holding them was accepted under SMTPUTF8 (RFC 6531 §3.3).
bool is_dot_string(std::string_view local) {
    if (local.empty() || local.front() == '.' || local.back() == '.') {
        return false;
    }
    for (std::size_t i = 0; i < local.size(); ++i) {
        const char c = local[i];
        if (c == '.') {
            if (local[i - 1] == '.') {
                return false;
            }
        } else if (is_ascii(c) && !is_atext(c)) {
            return false;
        }
    }
    return true;
}

// esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
bool is_esmtp_keyword(std::string_view k) {
    if (k.empty() || !(is_alpha(k[0]) || is_digit(k[0]))) {
        return false;
    }
    for (char c : k) {
        if (!(is_alpha(c) || is_digit(c) || c == '-')) {
            return false;
        }
    }
    return true;
}

// esmtp-value = 1*(%d33-60 / %d62-126), and UTF-8 with RFC 6531 §3.3.
bool is_esmtp_value(std::string_view v) {
    if (v.empty()) {
        return false;
    }
    for (std::size_t i = 0; i < v.size();) {
        const char c = v[i];
        if (is_ascii(c)) {
            if (c < 33 || c > 126 || c == '=') {
                return false;
            }
            ++i;
        } else {
            const std::size_t n = utf8_length(v, i);
            if (n == 0) {
                return false;
            }
            i += n;
        }
    }
    return true;
}

// RFC 1870: size-value ::= 1*20DIGIT. A value beyond 2^64-1 is still well-formed and simply
// too big, so it saturates rather than failing as a syntax error.
std::optional<std::uint64_t> parse_size(std::string_view v) {
    if (v.empty() || v.size() > 20) {
        return std::nullopt;
    }
    constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t n = 0;
    for (char c : v) {
        if (!is_digit(c)) {
            return std::nullopt;
        }
        const auto digit = static_cast<std::uint64_t>(c - '0');
        n = n > (max - digit) / 10 ? max : n * 10 + digit;
    }
    return n;
}

} // namespace

std::string address::str() const {
    std::string out;
    if (is_dot_string(local_part)) {
        out = local_part;
    } else {
        out.push_back('"');
        for (char c : local_part) {
            if (c == '"' || c == '\\') {
                out.push_back('\\');
            }
            out.push_back(c);
        }
        out.push_back('"');
    }
    if (!domain.empty()) {
        out.push_back('@');
        out += domain;
    }
    return out;
}

bool address::is_utf8() const {
    auto non_ascii = [](std::string_view s) {
        for (char c : s) {
            if (!is_ascii(c)) {
                return true;
            }
        }
        return false;
    };
    return non_ascii(local_part) || non_ascii(domain);
}

std::optional<address> parse_forward_path(std::string_view path, bool utf8_allowed) {
    return parse_path(path, utf8_allowed, true);
}

// Reverse-path = Path / "<>"
std::optional<reverse_path> parse_reverse_path(std::string_view path, bool utf8_allowed) {
    if (path == "<>") {
        return reverse_path{};
    }
    auto a = parse_path(path, utf8_allowed, false);
    if (!a) {
        return std::nullopt;
    }
    return reverse_path{std::move(*a)};
}

std::string path_text(const reverse_path& path) {
    return path ? "<" + path->str() + ">" : std::string("<>");
}

std::string_view to_string(body_type b) {
    switch (b) {
    case body_type::unspecified:
        return "unspecified";
    case body_type::seven_bit:
        return "7BIT";
    case body_type::eight_bit_mime:
        return "8BITMIME";
    }
    return "unspecified";
}

// Mail-parameters = esmtp-param *(SP esmtp-param); esmtp-param = esmtp-keyword ["=" esmtp-value]
// Runs of spaces are tolerated, as Postfix's smtpd does.
std::variant<mail_parameters, parameter_error> parse_mail_parameters(std::string_view params) {
    mail_parameters out;
    bool seen_size = false;
    bool seen_body = false;
    while (!params.empty()) {
        if (params.front() == ' ') {
            params.remove_prefix(1);
            continue;
        }
        const std::size_t end = params.find(' ');
        const std::string_view param = params.substr(0, end);
        params.remove_prefix(end == std::string_view::npos ? params.size() : end);

        const std::size_t eq = param.find('=');
        const std::string_view keyword = param.substr(0, eq);
        const bool has_value = eq != std::string_view::npos;
        const std::string_view value = has_value ? param.substr(eq + 1) : std::string_view();
        if (!is_esmtp_keyword(keyword) || (has_value && !is_esmtp_value(value))) {
            return parameter_error::syntax;
        }
        if (iequals(keyword, "SIZE")) {
            // RFC 1870: "SIZE=" size-value
            auto n = parse_size(value);
            if (!n) {
                return parameter_error::syntax;
            }
            if (seen_size) {
                return parameter_error::duplicate;
            }
            seen_size = true;
            out.size = n;
        } else if (iequals(keyword, "BODY")) {
            // RFC 6152: body-value ::= "7BIT" / "8BITMIME"
            body_type b = body_type::unspecified;
            if (iequals(value, "7BIT")) {
                b = body_type::seven_bit;
            } else if (iequals(value, "8BITMIME")) {
                b = body_type::eight_bit_mime;
            } else {
                return parameter_error::syntax;
            }
            if (seen_body) {
                return parameter_error::duplicate;
            }
            seen_body = true;
            out.body = b;
        } else if (iequals(keyword, "SMTPUTF8")) {
            // RFC 6531: the SMTPUTF8 parameter takes no value.
            if (has_value) {
                return parameter_error::syntax;
            }
            if (out.smtputf8) {
                return parameter_error::duplicate;
            }
            out.smtputf8 = true;
        } else {
            return parameter_error::unknown;
        }
    }
    return out;
}

} // namespace mailseal::lmtp
