// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Replies of an SMTP/LMTP server, parsed from the bytes it sends: no I/O, fed by the caller.
///
/// RFC 5321 §4.2: a reply is one or more lines "code-text" ending with "code text" (or a bare
/// "code"); every line has the same code. RFC 2034 puts an enhanced status code at the start of
/// each line's text when the server announces ENHANCEDSTATUSCODES; it is taken from the first
/// line and removed from every line that repeats it.
///
/// Failure policy: anything that is not a reply (a bad code, codes that differ between lines, a
/// line longer than max_line or a reply longer than max_lines) is an error, after which the
/// parser yields only that error again: the caller drops the connection.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <mailseal/lmtp/reply.hpp>

namespace mailseal::relay {

struct peer_reply {
    std::uint16_t code = 0;
    std::optional<lmtp::enhanced_code> enhanced;
    /// Each line's text without code, separator and enhanced code.
    std::vector<std::string> lines;

    /// "452 4.2.2 text" of the first line, for logs.
    std::string summary() const;
    /// The reply as we pass it on (lmtp::reply::relayed); nullopt for a code outside 2xx..5xx.
    std::optional<lmtp::reply> to_reply() const;
};

/// "d.ddd.ddd" at the start of `text`, followed by a space or the end, with class 2, 4 or 5.
std::optional<lmtp::enhanced_code> parse_enhanced_code(std::string_view text);

class reply_parser {
public:
    static constexpr std::size_t max_line = 4096;
    static constexpr std::size_t max_lines = 256;

    void feed(std::string_view bytes);
    /// The next complete reply, an error text, or nothing while a reply is incomplete.
    std::optional<std::variant<peer_reply, std::string>> next();
    /// Nothing received is waiting to be parsed: the server sent no more than was asked for.
    bool drained() const { return buffer_.empty() && partial_.lines.empty() && !error_; }

private:
    std::string buffer_;
    peer_reply partial_;
    std::optional<std::string> error_;
};

} // namespace mailseal::relay
