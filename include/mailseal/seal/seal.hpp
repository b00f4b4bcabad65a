// SPDX-License-Identifier: Apache-2.0
#pragma once

/// What is stored for one recipient, and the bytes of that copy.
///
/// The decision follows the policy table (docs/sealing.md):
///
/// | key discovery      | already encrypted | stored                            | reply       |
/// |--------------------|-------------------|-----------------------------------|-------------|
/// | usable keys        | no                | sealed to all the user's keys     | 250         |
/// | any                | yes               | as received                       | 250         |
/// | no usable key      | no                | per on_no_key: as received, or    | 250, 451    |
/// |                    |                   | nothing (defer, reject)           | 4.7.1, 550  |
/// |                    |                   |                                   | 5.7.1       |
/// | bogus              | no                | nothing                           | 451 4.7.5   |
/// | failure or timeout | no                | nothing                           | 451 4.4.3   |
/// | unsettled          | no                | nothing                           | 451 4.3.0   |
///
/// Unsettled: a format found no key because its library could not be set up (key_set::
/// unsettled); the recipient's key may be the one it missed.
/// A sealed copy is one encrypted object per recipient, in the format of its key set, naming
/// only that recipient's keys, so a copy never reveals who else (Bcc) received the message.
///
/// Failure policy: a sealing failure (the format's library) is an error text; the caller stores
/// nothing for that recipient and answers 451 4.3.0.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <mailseal/config/config.hpp>
#include <mailseal/dns/lookup.hpp>
#include <mailseal/lmtp/reply.hpp>
#include <mailseal/seal/format.hpp>
#include <mailseal/seal/message.hpp>

namespace mailseal::seal {

enum class action {
    seal,          ///< encrypt to the recipient's keys
    passthrough,   ///< already encrypted: as received
    plain,         ///< no usable key, policy plain: as received
    defer,         ///< no usable key, policy defer: 451 4.7.1
    reject,        ///< no usable key, policy reject: 550 5.7.1
    key_bogus,     ///< DNSSEC validation failed: 451 4.7.5
    key_failure,   ///< the lookup failed or timed out: 451 4.4.3
    key_unsettled, ///< a format could not judge its keys this time: 451 4.3.0
};
/// "sealed", "passthrough", "plain", "deferred", "rejected", "bogus", "lookup-failed",
/// "unsettled".
std::string_view to_string(action);

struct decision {
    action what = action::key_failure;
    /// Why, for the log line and the Mailseal: trace field ("no-key", "pgp-mime", ...).
    std::string reason;

    /// The reply for a recipient that gets no copy; nullopt when a copy is stored.
    std::optional<lmtp::reply> refusal() const;
};

/// The policy table. `form` is the message's encrypted form (none when plaintext).
decision decide(dns::outcome outcome, std::size_t usable_keys, bool unsettled, encrypted_form form,
                config::no_key_action on_no_key);

/// One recipient's copy: trace fields, then either the message as received or the sealed
/// outer message, produced as the canonical body streams in. All output is CRLF text, but for
/// a sealed copy's lines of ciphertext, which end in the line end it was made with.
class copy_writer {
public:
    /// The message as received after `trace` (the delivery's trace fields): for passthrough
    /// and plain copies. Appends the header section to `out`.
    static copy_writer as_received(std::string_view trace, const header_section& headers,
                                   std::string_view mailseal_field, std::string& out);

    /// A sealed copy to `keys` (not empty) in their format: `trace`, the Mailseal: field, the
    /// outer header section, then the ciphertext as the body arrives, in lines that end in
    /// `line_end` where the format writes them (format::seal()). Appends the outer header
    /// section to `out`.
    /// `note` goes into the Mailseal: field (sealed_field()).
    static std::variant<copy_writer, std::string>
    sealed(std::string_view trace, const header_section& headers, const key_set& keys,
           const config::seal_policy& policy, std::string_view protected_subject,
           std::string_view line_end, std::string& out, std::string_view note = {});

    /// Appends the output for the next canonical body bytes to `out`.
    std::optional<std::string> body(std::string_view canonical, std::string& out);
    /// Appends the end of the copy (for a sealed one, the rest of the CMS) to `out`.
    std::optional<std::string> finish(std::string& out);

    bool is_sealed() const { return encoder_ != nullptr; }
    /// The content cipher of a sealed copy ("aes-256-cbc"); empty for one as received.
    std::string_view cipher() const;

private:
    copy_writer() = default;
    std::unique_ptr<encoder> encoder_;
};

/// The inner MIME entity's header section of a sealed copy (without the empty line after it),
/// and the outer header fields (without trace fields and MIME fields), as the policy's header
/// mode shapes them. Exposed for tests and `mailseal seal`.
struct split_headers {
    std::string inner;
    std::string outer;
};
/// `legacy_marker` is a further Content-Type parameter of the inner entity under header
/// protection (the format's, see format::legacy_protected_headers_marker()).
split_headers split_for_sealing(const header_section& headers, config::header_mode mode,
                                std::string_view protected_subject,
                                std::string_view legacy_marker = {});

/// The Mailseal: trace field of a copy stored as received, CRLF included: "Mailseal:
/// passthrough; form=pgp-mime", "Mailseal: plain; reason=no-key".
std::string mailseal_field(const decision& d);

/// The Mailseal: trace field of a sealed copy, CRLF included: "Mailseal: sealed; format=smime;
/// keys=2; cipher=aes-256-cbc", then "; <note>" when `note` is not empty ("resealed").
std::string sealed_field(const format& f, std::size_t keys, std::string_view cipher,
                         std::string_view note = {});

} // namespace mailseal::seal
