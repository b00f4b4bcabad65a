// SPDX-License-Identifier: Apache-2.0
#pragma once

/// One message's copies for several recipients, decided and produced as the message streams
/// in: the part of delivery that `mailseal seal` shares, so both produce the same bytes.
///
/// Each recipient's copy is decided (seal::decide) once three things are known: the header
/// section, whether the message is already encrypted, and the recipient's keys. Until then the
/// canonical body is held in memory, bounded by `held_body_limit`; needs_keys() tells the
/// caller to wait for the missing keys before writing more, so memory stays bounded and no
/// plaintext is ever written anywhere to wait. A body that claims to be encrypted is known to
/// be only at its end (seal/encrypted.hpp): beyond the bound, it waits in an
/// encrypted_scratch file, unreadable at rest; if that file cannot be made, the message is
/// sealed (a second layer, never a loss). A recipient whose policy has passthrough = never
/// does not wait for the verdict: everything is sealed for it.
///
/// Failure policy: a copy that cannot be produced (OpenSSL) or stored (the sink) ends for that
/// recipient only, with the reply to give; the others go on.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <mailseal/config/config.hpp>
#include <mailseal/lmtp/reply.hpp>
#include <mailseal/seal/encrypted.hpp>
#include <mailseal/seal/message.hpp>
#include <mailseal/seal/scratch.hpp>
#include <mailseal/seal/seal.hpp>

namespace mailseal::seal {

/// Body bytes held while some recipient's copy is undecided.
inline constexpr std::size_t held_body_limit = 1024 * 1024;
/// A header section larger than this is not parsed: the whole message is sealed as opaque
/// content. Postfix's header_size_limit is 100 KiB, so real mail stays below; parsed fields
/// cost several times their size in memory, per connection.
inline constexpr std::size_t header_section_limit = 256 * 1024;

/// Where copies go (Maildir files for delivery, stdout for `mailseal seal`).
class copy_sink {
public:
    virtual ~copy_sink() = default;
    /// Recipient `index`'s copy will be stored: returns the trace fields to put first, or the
    /// reply that ends this recipient (e.g. its Maildir cannot be created).
    virtual std::variant<std::string, lmtp::reply> open(std::size_t index) = 0;
    /// Appends CRLF text to the copy (or lines ending in line_end()); a reply ends this
    /// recipient.
    virtual std::optional<lmtp::reply> write(std::size_t index, std::string_view bytes) = 0;
    /// The line end recipient `index`'s copy is stored with, once open() gave it a copy: a
    /// sealed copy's lines of ciphertext end in it ("\n" for a Maildir file), so the sink need
    /// not convert them.
    virtual std::string_view line_end(std::size_t /*index*/) const { return "\r\n"; }
    /// The same for a sealed copy's text, which the sink may keep instead of copying: `bytes`
    /// is left empty, perhaps holding another buffer.
    virtual std::optional<lmtp::reply> write_taking(std::size_t index, std::string& bytes) {
        auto result = write(index, bytes);
        bytes.clear();
        return result;
    }
};

class message_sealer {
public:
    struct recipient_state {
        config::seal_policy policy;
        std::optional<key_set> keys;
        std::optional<seal::decision> decided;
        /// Set when the recipient gets no copy: its policy's refusal, or a failure.
        std::optional<lmtp::reply> refusal;
        /// Why, for the log: the failure text.
        std::string detail;
        std::optional<copy_writer> writer;
    };

    message_sealer(std::vector<config::seal_policy> policies, std::string protected_subject,
                   copy_sink& sink);
    ~message_sealer();
    message_sealer(const message_sealer&) = delete;
    message_sealer& operator=(const message_sealer&) = delete;

    void provide_keys(std::size_t index, key_set keys);
    /// Appends message bytes (as received; LF or CRLF line ends).
    void write(std::string_view bytes);
    /// Body is held beyond held_body_limit for recipients without keys.
    bool needs_keys() const;
    bool has_keys(std::size_t index) const;
    /// The whole message was written. A recipient still without keys counts as a failed
    /// lookup. Decides every copy and completes them.
    void end_of_data();
    /// A recipient the caller gave up on (e.g. no mailbox): it gets no copy.
    void exclude(std::size_t index, lmtp::reply why, std::string detail);

    /// A note for the Mailseal: field of every sealed copy ("resealed"); before the first write.
    void set_sealed_note(std::string note) { sealed_note_ = std::move(note); }

    const recipient_state& recipient(std::size_t index) const { return recipients_.at(index); }
    std::size_t recipients() const { return recipients_.size(); }

private:
    /// True when the recipient's copy was opened (it then needs the body so far).
    bool decide(std::size_t index);
    void decide_all();
    /// Sends the body so far (scratch file, then memory) to the newly decided recipients.
    void send_backlog(const std::vector<std::size_t>& fresh);
    bool ready_to_decide(const recipient_state& r) const;
    /// The body claims encryption and is longer than the bound: wait in a scratch file.
    void spill();
    void unverified(std::string_view why);
    void send(std::size_t index, std::string_view bytes);
    void fail(std::size_t index, lmtp::reply why, std::string detail);
    bool flush(std::size_t index);
    bool any_undecided() const;
    void headers_complete();
    void body_arrived(std::string_view bytes);

    std::vector<recipient_state> recipients_;
    std::string sealed_note_;
    std::string protected_subject_;
    copy_sink& sink_;
    canonicalizer canonicalize_;
    header_scanner headers_{header_section_limit};
    /// Known once the header section is, or once the body confirms what it claims.
    std::optional<encrypted_form> form_;
    /// The form the header section claims, and the body check that must confirm it.
    encrypted_form claimed_ = encrypted_form::none;
    std::unique_ptr<body_scanner> check_;
    /// Canonical body bytes since the header section, while some copy is undecided: in memory,
    /// or past held_body_limit, while the form is unknown, in the scratch file.
    std::string held_;
    std::optional<encrypted_scratch> spilled_;
    /// Scratch buffers, reused; wiped after each use.
    std::string canonical_;
    std::string body_;
    std::string output_;
};

} // namespace mailseal::seal
