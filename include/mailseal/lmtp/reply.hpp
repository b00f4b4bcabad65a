// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Typed LMTP replies and the one table they come from.
///
/// A reply is a three-digit code, an RFC 3463 enhanced status code and text. The class of the
/// enhanced code must agree with the first digit of the reply code (RFC 2034 §4; Postfix's
/// smtp_chat.c ignores a disagreeing enhanced code and replaces it with X.0.0), so every reply
/// kind is a `status` checked at compile time, and every reply the daemon can send is a named
/// constant in `replies` below.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailseal::lmtp {

/// RFC 3463 enhanced status code: class.subject.detail.
struct enhanced_code {
    std::uint8_t cls;
    std::uint16_t subject;
    std::uint16_t detail;

    friend constexpr bool operator==(const enhanced_code&, const enhanced_code&) = default;
    std::string str() const;
};

/// A kind of reply: code, enhanced code (absent only for the greeting and the LHLO reply, which
/// RFC 2034 §3 exempts) and default text.
class status {
public:
    consteval status(std::uint16_t code, std::optional<enhanced_code> enhanced,
                     std::string_view text)
        : code_(code), enhanced_(enhanced), text_(text) {
        if (code < 200 || code > 599) {
            throw "reply code outside 2xx..5xx";
        }
        if (enhanced && enhanced->cls != code / 100) {
            throw "enhanced status class must match the reply code's first digit";
        }
        if (enhanced && enhanced->cls != 2 && enhanced->cls != 4 && enhanced->cls != 5) {
            throw "enhanced status class must be 2, 4 or 5";
        }
    }

    constexpr std::uint16_t code() const { return code_; }
    constexpr const std::optional<enhanced_code>& enhanced() const { return enhanced_; }
    constexpr std::string_view text() const { return text_; }

private:
    std::uint16_t code_;
    std::optional<enhanced_code> enhanced_;
    std::string_view text_;
};

/// A reply ready to send: a status plus the text actually sent (the status's default text, or
/// a more specific one), possibly several lines.
class reply {
public:
    /// The status's own text.
    reply(const status& s); // NOLINT(google-explicit-constructor): a status is a reply
    /// The status's code and enhanced code with other text; each element is one line.
    reply(const status& s, std::string text);
    reply(const status& s, std::vector<std::string> lines);
    /// A reply received from another server (the next hop), passed on as it came: nullopt for a
    /// code outside 200..599. An enhanced code whose class disagrees with the code is dropped
    /// (Postfix would ignore it too), and control characters in the text become '?', since the
    /// lines are sent on to our own client.
    static std::optional<reply> relayed(std::uint16_t code, std::optional<enhanced_code> enhanced,
                                        std::vector<std::string> lines);

    std::uint16_t code() const { return code_; }
    const std::optional<enhanced_code>& enhanced() const { return enhanced_; }
    const std::vector<std::string>& lines() const { return lines_; }
    /// First line's text, for logs.
    const std::string& text() const { return lines_.front(); }

    bool positive() const { return code_ < 400; }
    bool transient() const { return code_ >= 400 && code_ < 500; }
    bool permanent() const { return code_ >= 500; }

    /// Wire form: "250-first\r\n250 last\r\n", each line "code[-| ]enh text".
    std::string render() const;
    /// "250 2.0.0 text" of the first line, for logs.
    std::string summary() const;
    /// The same code and enhanced code with `prefix` put before the text of every line. The
    /// session uses it for the per-recipient replies after DATA (`250 2.0.0 <rcpt> Delivered`),
    /// which Postfix logs and copies into bounces, so each one names its recipient. A line that
    /// already starts with the prefix (a relayed Dovecot reply names its recipient) is kept.
    reply with_prefix(std::string_view prefix) const;

    friend bool operator==(const reply&, const reply&) = default;

private:
    reply(std::uint16_t code, std::optional<enhanced_code> enhanced,
          std::vector<std::string> lines);

    std::uint16_t code_;
    std::optional<enhanced_code> enhanced_;
    std::vector<std::string> lines_;
};

/// Every reply mailseal sends. The comment names the situation; texts are defaults.
namespace replies {
// Connection
inline constexpr status greeting{220, std::nullopt, "LMTP mailseal ready"};
inline constexpr status lhlo{250, std::nullopt, ""};
inline constexpr status closing{221, enhanced_code{2, 0, 0}, "Bye"};
inline constexpr status too_many_connections{421, enhanced_code{4, 7, 0},
                                             "Too many connections, try again later"};
inline constexpr status timeout{421, enhanced_code{4, 4, 2}, "Timeout, closing connection"};
inline constexpr status shutting_down{421, enhanced_code{4, 3, 2}, "Service shutting down"};

// Commands
inline constexpr status ok{250, enhanced_code{2, 0, 0}, "Ok"};
inline constexpr status sender_ok{250, enhanced_code{2, 1, 0}, "Ok"};
inline constexpr status recipient_ok{250, enhanced_code{2, 1, 5}, "Ok"};
inline constexpr status cannot_vrfy{252, enhanced_code{2, 5, 0},
                                    "Cannot VRFY user, but will accept message"};
inline constexpr status start_data{354, std::nullopt, "End data with <CR><LF>.<CR><LF>"};
inline constexpr status delivered{250, enhanced_code{2, 0, 0}, "Delivered"};

// Protocol errors
inline constexpr status unknown_command{500, enhanced_code{5, 5, 1}, "Unknown command"};
inline constexpr status use_lhlo{500, enhanced_code{5, 5, 1}, "This is LMTP: use LHLO"};
inline constexpr status line_too_long{500, enhanced_code{5, 5, 2}, "Line too long"};
inline constexpr status bad_command_syntax{500, enhanced_code{5, 5, 2}, "Syntax error"};
inline constexpr status syntax_error{501, enhanced_code{5, 5, 4}, "Syntax error in parameters"};
inline constexpr status bad_sender_syntax{501, enhanced_code{5, 1, 7}, "Bad sender address syntax"};
inline constexpr status bad_recipient_syntax{501, enhanced_code{5, 1, 3},
                                             "Bad recipient address syntax"};
inline constexpr status bad_sequence{503, enhanced_code{5, 5, 1}, "Bad sequence of commands"};
inline constexpr status no_valid_recipients{503, enhanced_code{5, 5, 1}, "No valid recipients"};
inline constexpr status unknown_parameter{555, enhanced_code{5, 5, 4},
                                          "Unsupported MAIL/RCPT parameter"};
inline constexpr status smtputf8_required{553, enhanced_code{5, 6, 7},
                                          "Non-ASCII address requires SMTPUTF8"};

// Recipients and limits
inline constexpr status unknown_recipient{550, enhanced_code{5, 1, 1}, "No such user here"};
inline constexpr status too_many_recipients{452, enhanced_code{4, 5, 3}, "Too many recipients"};
inline constexpr status message_too_big{552, enhanced_code{5, 3, 4},
                                        "Message exceeds fixed maximum message size"};
inline constexpr status data_line_too_long{554, enhanced_code{5, 6, 0},
                                           "Message contains a line that is too long"};

// Delivery
inline constexpr status disk_full{452, enhanced_code{4, 3, 1}, "Insufficient system storage"};
inline constexpr status over_quota_temporary{452, enhanced_code{4, 2, 2}, "Mailbox is full"};
inline constexpr status over_quota_permanent{552, enhanced_code{5, 2, 2}, "Mailbox is full"};
inline constexpr status local_error{451, enhanced_code{4, 3, 0},
                                    "Temporary local problem, try again later"};
inline constexpr status mailbox_unavailable{451, enhanced_code{4, 2, 0},
                                            "Mailbox temporarily unavailable"};

// Sealing (docs/replies.md has the policy table). A bogus or failed key lookup is always
// temporary: nothing is stored in clear while the recipient's key cannot be known.
inline constexpr status key_bogus{451, enhanced_code{4, 7, 5},
                                  "Recipient's key failed DNSSEC validation, try again later"};
inline constexpr status key_lookup_failed{451, enhanced_code{4, 4, 3},
                                          "Recipient's key lookup failed, try again later"};
inline constexpr status key_evaluation_failed{
    451, enhanced_code{4, 3, 0}, "Recipient's key could not be evaluated, try again later"};
inline constexpr status no_key_deferred{451, enhanced_code{4, 7, 1},
                                        "Recipient requires encryption but has no usable key yet"};
inline constexpr status no_key_rejected{
    550, enhanced_code{5, 7, 1}, "Recipient accepts only encrypted mail and has no usable key"};
inline constexpr status sealing_failed{451, enhanced_code{4, 3, 0},
                                       "Encryption failed, try again later"};
// Relaying to the next hop's LMTP server ([store] kind = "lmtp"); its own replies are passed
// on unchanged (reply::relayed).
inline constexpr status next_hop_unavailable{451, enhanced_code{4, 4, 1},
                                             "Next hop not answering, try again later"};
inline constexpr status next_hop_lost{451, enhanced_code{4, 4, 2},
                                      "Connection to next hop lost, try again later"};
inline constexpr status next_hop_confused{451, enhanced_code{4, 5, 0},
                                          "Next hop sent an invalid reply, try again later"};
} // namespace replies

} // namespace mailseal::lmtp
