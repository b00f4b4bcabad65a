// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Envelope addresses and MAIL/RCPT parameters (RFC 5321 §4.1.2, RFC 6531 for SMTPUTF8,
/// RFC 1870 SIZE, RFC 6152 8BITMIME).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <mailseal/lmtp/reply.hpp>

namespace mailseal::lmtp {

/// A mailbox as it appeared in the path, with the quoting of a quoted-string local-part removed.
/// `domain` is empty only for RCPT TO:<Postmaster> (RFC 5321 §4.1.1.3).
struct address {
    std::string local_part;
    std::string domain;

    /// `local@domain`, re-quoting the local-part when it is not a dot-string.
    std::string str() const;
    /// True when local-part or domain holds a non-ASCII octet (needs SMTPUTF8).
    bool is_utf8() const;

    friend bool operator==(const address&, const address&) = default;
};

/// The reverse-path of MAIL FROM: absent for the null sender `<>`.
using reverse_path = std::optional<address>;

/// Parses a path with its angle brackets, e.g. `<user@example.org>` or `<@a,@b:user@example.org>`
/// (source routes are accepted and dropped, RFC 5321 §4.1.1.3 and Appendix C). `utf8_allowed`
/// permits RFC 6531 UTF-8 in local-part and domain. Returns nullopt on any syntax error or when
/// a length limit of §4.5.3.1 is exceeded (local-part 64, domain 255, path 256 octets).
std::optional<address> parse_forward_path(std::string_view path, bool utf8_allowed);
/// As parse_forward_path, and also accepts `<>`.
std::optional<reverse_path> parse_reverse_path(std::string_view path, bool utf8_allowed);
/// The path as MAIL FROM and Return-Path: write it: `<local@domain>`, or `<>` for the null
/// sender.
std::string path_text(const reverse_path& path);

enum class body_type { unspecified, seven_bit, eight_bit_mime };
std::string_view to_string(body_type);

/// Parameters of MAIL FROM that mailseal announces and understands.
struct mail_parameters {
    std::optional<std::uint64_t> size;
    body_type body = body_type::unspecified;
    bool smtputf8 = false;
};

/// What went wrong with a parameter list; the session turns it into a reply.
enum class parameter_error {
    syntax,    ///< malformed keyword or value: 501 5.5.4
    unknown,   ///< keyword mailseal does not support: 555 5.5.4
    duplicate, ///< same keyword twice: 501 5.5.4
};

/// Parses the esmtp-parameters that follow the path of MAIL FROM (space separated
/// `KEYWORD[=value]`, keywords case-insensitive).
std::variant<mail_parameters, parameter_error> parse_mail_parameters(std::string_view params);

} // namespace mailseal::lmtp
