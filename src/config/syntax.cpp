// SPDX-License-Identifier: Apache-2.0
#include "syntax.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <charconv>
#include <idn2.h>
#include <memory>
#include <netinet/in.h>

#include <mailseal/util/ascii.hpp>

namespace mailseal::config::detail {
namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_ascii_alnum(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_digit);
}

/// RFC 1035 §2.3.4: "labels 63 octets or less", "names 255 octets or less".
constexpr std::size_t max_label = 63;
constexpr std::size_t max_name = 255;

std::optional<std::string> check_label(std::string_view label, bool allow_utf8) {
    if (label.empty()) {
        return "has an empty label";
    }
    if (label.size() > max_label) {
        return "label " + toml_string(label) + " is longer than 63 octets";
    }
    // RFC 1123 §2.1 lets a label begin with a digit; RFC 952 still forbids '-' at either end.
    if (label.front() == '-' || label.back() == '-') {
        return "label " + toml_string(label) + " begins or ends with '-'";
    }
    for (char c : label) {
        auto byte = static_cast<unsigned char>(c);
        if (is_ascii_alnum(c) || c == '-') {
            continue;
        }
        if (byte >= 0x80) {
            if (allow_utf8) {
                continue;
            }
            return "label " + toml_string(label) + " contains non-ASCII characters";
        }
        if (byte < 0x20 || byte == 0x7f) {
            return "label " + toml_string(label) + " contains a control character";
        }
        return "label " + toml_string(label) + " contains '" + std::string(1, c) + "'";
    }
    return std::nullopt;
}

/// Length of the UTF-8 sequence that starts with `lead` (toml++ has checked the encoding).
std::size_t utf8_length(unsigned char lead) {
    if (lead < 0xc0) {
        return 1;
    }
    if (lead < 0xe0) {
        return 2;
    }
    return lead < 0xf0 ? 3 : 4;
}

} // namespace

std::variant<std::int64_t, number_error> parse_scaled(std::string_view text,
                                                      std::span<const unit> units) {
    std::int64_t factor = 1;
    for (const unit& u : units) {
        if (!text.empty() && text.back() == u.suffix) {
            factor = u.factor;
            text.remove_suffix(1);
            break;
        }
    }
    if (!all_digits(text)) {
        return number_error::syntax;
    }
    std::int64_t n = 0;
    for (char c : text) {
        if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, c - '0', &n)) {
            return number_error::too_large;
        }
    }
    if (__builtin_mul_overflow(n, factor, &n)) {
        return number_error::too_large;
    }
    return n;
}

std::variant<tcp_listener, std::string> parse_tcp_address(std::string_view text) {
    const std::string format = R"(must be a numeric "IPv4:port" or "[IPv6]:port")";
    std::string host;
    std::string_view port;
    int family = AF_INET;
    if (text.starts_with('[')) {
        auto close = text.find(']');
        if (close == std::string_view::npos || text.substr(close + 1, 1) != ":") {
            return format;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        family = AF_INET6;
    } else {
        // The first colon: an IPv6 address without brackets leaves a host inet_pton rejects.
        auto colon = text.find(':');
        if (colon == std::string_view::npos) {
            return format;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    std::array<unsigned char, sizeof(in6_addr)> binary{};
    if (::inet_pton(family, host.c_str(), binary.data()) != 1) {
        return format;
    }
    if (!all_digits(port)) {
        return format;
    }
    // Port 0 asks the kernel for any free port (the daemon logs the one it got).
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || end != port.data() + port.size() || value > 65535) {
        return std::string("must have a port between 0 and 65535");
    }
    return tcp_listener{std::move(host), static_cast<std::uint16_t>(value)};
}

std::optional<std::string> check_domain(std::string_view name, bool allow_utf8) {
    if (name.size() > max_name) {
        return "is longer than 255 octets";
    }
    std::size_t start = 0;
    for (;;) {
        auto dot = name.find('.', start);
        auto label = name.substr(start, dot == std::string_view::npos ? dot : dot - start);
        if (auto problem = check_label(label, allow_utf8)) {
            return problem;
        }
        if (dot == std::string_view::npos) {
            return std::nullopt;
        }
        start = dot + 1;
    }
}

std::optional<std::string> check_dns_server(std::string_view text) {
    const std::string format = R"(must be a numeric "IP" or "IP@port" (IPv6 without brackets))";
    auto at = text.rfind('@');
    std::string host(text.substr(0, at));
    std::array<unsigned char, sizeof(in6_addr)> binary{};
    if (::inet_pton(AF_INET, host.c_str(), binary.data()) != 1 &&
        ::inet_pton(AF_INET6, host.c_str(), binary.data()) != 1) {
        return format;
    }
    if (at == std::string_view::npos) {
        return std::nullopt;
    }
    auto port = text.substr(at + 1);
    if (!all_digits(port)) {
        return format;
    }
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535) {
        return std::string("must have a port between 1 and 65535");
    }
    return std::nullopt;
}

std::optional<std::string> check_zone_name(std::string_view name) {
    if (name == ".") {
        return std::nullopt;
    }
    if (!name.ends_with('.')) {
        return std::string("must be a zone name ending in '.'");
    }
    if (auto problem = check_domain(name.substr(0, name.size() - 1), false)) {
        return "must be a zone name: " + *problem;
    }
    return std::nullopt;
}

bool is_trust_anchor_record(std::string_view text) {
    auto fields_of = text.substr(0, text.find(';'));
    bool first = true;
    std::size_t pos = 0;
    for (;;) {
        pos = fields_of.find_first_not_of(" \t", pos);
        if (pos == std::string_view::npos) {
            return false;
        }
        auto end = fields_of.find_first_of(" \t", pos);
        auto field = fields_of.substr(pos, end == std::string_view::npos ? end : end - pos);
        if (!first && (util::iequals(field, "DS") || util::iequals(field, "DNSKEY"))) {
            return true;
        }
        first = false;
        if (end == std::string_view::npos) {
            return false;
        }
        pos = end;
    }
}

std::optional<std::string> check_maildir_template(std::string_view tmpl) {
    if (!tmpl.starts_with('/')) {
        return "must be an absolute path";
    }
    bool per_recipient = false;
    for (std::size_t i = 0; i < tmpl.size(); ++i) {
        if (tmpl[i] != '%') {
            continue;
        }
        if (i + 1 == tmpl.size()) {
            return "ends with a lone '%' (write %% for a percent sign)";
        }
        char escape = tmpl[++i];
        switch (escape) {
        case 'u':
        case 'n':
            per_recipient = true;
            break;
        case 'd':
        case '%':
            break;
        default: {
            auto escaped = tmpl.substr(i, utf8_length(static_cast<unsigned char>(escape)));
            return "has an unknown escape " + toml_string("%" + std::string(escaped)) +
                   " (use %u, %n, %d or %%)";
        }
        }
    }
    // With only %d (or no escape at all), every recipient of a domain would read and write
    // one shared Maildir: a privacy failure, never a useful setting.
    if (!per_recipient) {
        return "must contain %n or %u, or all recipients would share one Maildir";
    }
    return std::nullopt;
}

std::string toml_string(std::string_view text) {
    // TOML 1.0 basic strings: '"', '\' and control characters (U+0000..U+001F, U+007F) must
    // be escaped; everything else, UTF-8 included, is written as is.
    std::string out = "\"";
    for (char c : text) {
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\b':
            out += "\\b";
            break;
        case '\t':
            out += "\\t";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\f':
            out += "\\f";
            break;
        case '\r':
            out += "\\r";
            break;
        default: {
            auto byte = static_cast<unsigned char>(c);
            if (byte < 0x20 || byte == 0x7f) {
                constexpr std::string_view hex = "0123456789ABCDEF";
                out += "\\u00";
                out += hex[byte >> 4];
                out += hex[byte & 0xf];
            } else {
                out += c;
            }
        }
        }
    }
    out += '"';
    return out;
}

std::string toml_octal(mode_t mode) {
    std::array<char, 24> digits{};
    auto result = std::to_chars(digits.data(), digits.data() + digits.size(),
                                static_cast<unsigned long>(mode), 8);
    return "0o" + std::string(digits.data(), result.ptr);
}

std::string format_tcp_address(const tcp_listener& listener) {
    auto port = std::to_string(listener.port);
    if (listener.address.find(':') != std::string::npos) {
        return "[" + listener.address + "]:" + port;
    }
    return listener.address + ":" + port;
}

std::string domain_key(std::string_view domain) {
    std::string input(domain);
    char* output = nullptr;
    int rc = idn2_to_ascii_8z(input.c_str(), &output, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    std::unique_ptr<char, decltype(&idn2_free)> owned(output, &idn2_free);
    if (rc != IDN2_OK || !owned) {
        return util::ascii_lower(domain);
    }
    return util::ascii_lower(owned.get());
}

} // namespace mailseal::config::detail
