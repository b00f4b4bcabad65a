// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The LMTP server protocol (RFC 2033 on RFC 5321) as a state machine with no I/O.
///
/// Bytes go in through feed(); replies and actions come out as events, drained with
/// take_events(). The caller (the Asio session) only moves bytes, time and answers: it writes
/// replies, checks each recipient the session asks about (events::verify_recipient) and answers
/// with recipient_verified(), streams body events to the delivery, reports each recipient's
/// delivery result back with complete_recipient(), and calls timed_out() when a deadline
/// expires. Both answers may come later, from another thread's work, since finding out whether
/// a mailbox exists or storing a message touches the filesystem; the session waits for them
/// with the client's further input buffered.
///
/// Failure policy: every malformed or out-of-order input gets a reply and the session goes on;
/// only QUIT, a timeout and shutdown close the connection. A limit that is crossed inside DATA
/// (message size, line length) discards the message and answers every recipient with the same
/// permanent reply once the final dot arrives, so the client is never left without its
/// per-recipient replies (RFC 2033 §4.2).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <mailseal/lmtp/address.hpp>
#include <mailseal/lmtp/reply.hpp>

namespace mailseal::lmtp {

struct session_limits {
    /// Largest message body accepted, in octets after dot-unstuffing; announced with SIZE.
    std::uint64_t message_size = 50 * 1024 * 1024;
    /// RCPTs accepted per transaction; RFC 5321 §4.5.3.1.8 requires at least 100.
    std::size_t recipients = 100;
    /// Longest command line including CRLF (RFC 5321 §4.5.3.1.4: 512).
    std::size_t command_line = 512;
    /// Longest DATA line including CRLF, not counting a stuffed dot (§4.5.3.1.6: 1000).
    std::size_t data_line = 1000;
};

struct session_options {
    /// Our name, used in the greeting, the LHLO reply and the 421 replies.
    std::string hostname;
    session_limits limits;
};

/// A transaction's envelope: what MAIL, RCPT and LHLO established.
struct envelope {
    std::string lhlo_name;
    reverse_path sender;
    mail_parameters parameters;
    /// RCPTs that got a 2xx, in RCPT order. A repeated forward-path appears again (§4.2).
    std::vector<address> recipients;
};

namespace events {
/// Send this reply.
struct send {
    reply what;
    /// For a reply refusing a RCPT on the session's own checks, why (a word of
    /// metrics::rcpt_refusal_names: sequence, syntax, parameter, smtputf8-required,
    /// too-many-recipients); empty otherwise.
    std::string_view rcpt_refusal{};
};
/// A RCPT passed syntax, sequence and the recipient limit: decide whether the recipient is one
/// of ours and answer with recipient_verified(). Nothing else happens until then.
struct verify_recipient {
    address recipient;
    /// The position the recipient takes in the envelope if accepted (RCPT order, 0-based),
    /// so work started for it now (the key lookup) can be matched at DATA; a new transaction
    /// starts again at 0.
    std::size_t index = 0;
};
/// DATA was accepted (its 354 precedes this event): open the per-recipient deliveries.
struct begin_data {
    envelope env;
};
/// Message bytes in order: dot-unstuffed, line ends exactly as received (CRLF on the wire).
struct body {
    std::string bytes;
};
/// The final dot arrived for a message that is still wanted: finish each recipient's delivery
/// and report it with complete_recipient(i, reply) for every i in [0, recipients).
struct end_data {
    std::size_t recipients;
};
/// The message will not be delivered (a limit was crossed): drop what was written so far. The
/// session replies to the recipients itself when the final dot arrives.
struct discard_data {
    reply why;
};
/// Close the connection after sending what came before.
struct close {};
} // namespace events

using event = std::variant<events::send, events::verify_recipient, events::begin_data, events::body,
                           events::end_data, events::discard_data, events::close>;

class session {
public:
    /// What the session waits for, so the caller can pick the deadline to arm.
    enum class phase {
        idle,       ///< no transaction: waiting for a command (idle timeout)
        command,    ///< inside a transaction, waiting for a command (command timeout)
        verifying,  ///< waiting for recipient_verified() (command timeout); input is buffered
        data,       ///< reading the message (data timeout)
        delivering, ///< waiting for complete_recipient(); input is buffered, not parsed
        closed,     ///< nothing more will be read
    };

    explicit session(session_options options);

    /// Emits the greeting.
    void start();
    /// Consumes bytes from the client; pipelined commands are all processed, in order.
    void feed(std::string_view bytes);
    /// Answers the last verify_recipient event: nullopt accepts the recipient (250 2.1.5),
    /// otherwise `refusal` is sent (e.g. 550 5.1.1). The session then goes on with the input
    /// buffered meanwhile, which may bring the next verify_recipient. A call outside the
    /// verifying phase is ignored: after a timeout or shutdown nobody waits for the answer.
    void recipient_verified(std::optional<reply> refusal);
    /// Reports the delivery result of recipient `index` (0-based, RCPT order) while delivering.
    /// Replies go out in RCPT order, each as soon as it and all before it are known; after the
    /// last one the transaction ends and input buffered meanwhile is processed. A call outside
    /// the delivering phase, with an index out of range or for an index already reported is
    /// ignored: the first result for a recipient is the one its client was promised.
    void complete_recipient(std::size_t index, reply result);
    /// A deadline expired: emits 421 4.4.2 and closes.
    void timed_out();
    /// The daemon is stopping: emits 421 4.3.2 and closes.
    void shut_down();

    std::vector<event> take_events();
    phase current_phase() const;
    bool in_transaction() const;

private:
    /// Where the DATA reader is inside the current line (RFC 5321 §4.5.2 dot transparency).
    enum class data_state {
        line_start, ///< after CRLF, or at the first byte of the message
        dot,        ///< a line began with "."; withheld until the next byte
        dot_cr,     ///< a line began with ".\r"; "\n" now ends the message
        in_line,    ///< inside a line
        cr,         ///< after a CR inside a line; "\n" now ends the line
    };

    void consume(std::string_view bytes);
    void consume_command(std::string_view& bytes);
    void consume_data(std::string_view& bytes);
    void on_command_line(std::string_view line);
    /// The length of the whole lines at the start of `bytes` that can be taken at once: each
    /// ends in CRLF, is within the line limit, and none but the first starts with a dot.
    std::size_t plain_lines(std::string_view bytes) const;
    /// Octets of message data the size limit still admits.
    std::uint64_t size_room() const;
    void accept_body(std::string_view content);
    void accept_lines(std::string_view lines);
    void fail_data(const reply& why);
    void finish_data();
    void flush_body();
    void send_completed_results();
    template <class Event>
    void emit(Event e);
    void emit_reply(reply r);
    /// A reply refusing the RCPT being read, tagged with why.
    void refuse_rcpt(reply r, std::string_view reason);
    void close_with(reply r);
    void reset_transaction();

    void cmd_lhlo(std::string_view args);
    void cmd_mail(std::string_view args);
    void cmd_rcpt(std::string_view args);
    void cmd_data(std::string_view args);
    void cmd_rset(std::string_view args);
    void cmd_noop(std::string_view args);
    void cmd_vrfy(std::string_view args);
    void cmd_quit(std::string_view args);

    session_options options_;
    std::vector<event> events_;
    phase phase_ = phase::idle;
    bool greeted_ = false; // LHLO seen
    bool have_mail_ = false;
    envelope envelope_;

    // Command reader. line_ holds the start of an unfinished command line, never more than
    // limits.command_line - 1 octets; a longer line is skipped up to its CRLF instead.
    std::string line_;
    bool skipping_line_ = false;
    bool skipped_cr_ = false; // the last skipped octet was CR

    // DATA reader.
    data_state data_state_ = data_state::line_start;
    std::size_t line_length_ = 0; // octets of the current line delivered so far
    std::uint64_t body_size_ = 0;
    std::optional<reply> data_failure_; // limit crossed: discard, then answer every recipient
    std::string body_out_;              // body octets of this feed() not yet emitted

    // Verifying: the recipient asked about.
    address verifying_;

    // Verifying and delivering: input that arrived meanwhile. Delivering: the results reported
    // so far.
    std::string pending_;
    std::vector<std::optional<reply>> results_;
    std::size_t next_result_ = 0; // first recipient whose reply is not sent yet
};

std::string_view to_string(session::phase);

} // namespace mailseal::lmtp
