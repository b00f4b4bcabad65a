// SPDX-License-Identifier: Apache-2.0
// Fuzzes the LMTP session (include/mailseal/lmtp/session.hpp) the way the server drives it: the
// client's bytes arrive in pieces, every event is handled in order, recipients are verified and
// deliveries completed, sometimes only after the next piece arrived, and a timeout or shutdown
// may come between reads.
//
// The oracle reads the same bytes independently of the session, by RFC 5321 alone: command
// lines end at CRLF, each gets exactly one reply (or a verify_recipient event) in order, and a
// message accepted with 354 ends at the first line that is a lone "." (CRLF "." CRLF, §4.5.2),
// never at a bare CR or LF (§2.3.8, SMTP smuggling). The body events of each message must be
// exactly its dot-unstuffed text, cut at the first octet that crosses a limit if one does. The
// replies after a message are one per recipient, in RCPT order, with the results given (RFC 2033
// §4.2); a RCPT gets the answer its verification gave.
//
// Input (split_input.hpp), option bits: 0 a command line limit of 24 octets, 1 a data line
// limit of 12, 2 a message size limit of 100, 3 two recipients at most, 4 deliveries completed
// last to first. Choices: per verification, bit 0 refuses and bit 1 answers only after the
// next piece; per recipient at end of data, bits 0-1 pick the result and bit 2 (of the first)
// completes only after the next piece; between pieces, 0xfe times out and 0xff shuts down.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <mailseal/lmtp/session.hpp>

#include "oracle.hpp"
#include "split_input.hpp"

namespace mailseal::lmtp {
namespace {

using fuzz::require;

/// A message as RFC 5321 §4.5.2 reads it from `wire`, starting after the DATA line: lines
/// begin there and after each CRLF; a line that is "." CRLF ends the message, any other line
/// loses a leading dot.
struct message_text {
    std::string unstuffed;
    /// Offset of the final "." line; npos while it has not arrived.
    std::size_t end = std::string::npos;
    /// The text so far ends in a line-start ".\r", whose CR the session cannot pass on before
    /// it knows whether LF (the end of the message) follows.
    bool withheld_cr = false;
};

message_text read_message(std::string_view wire, std::size_t start) {
    message_text m;
    bool line_start = true;
    std::size_t last_dot = std::string::npos;
    for (std::size_t i = start; i < wire.size(); ++i) {
        if (line_start && wire.substr(i, 3) == ".\r\n") {
            m.end = i;
            return m;
        }
        const char c = wire[i];
        if (line_start && c == '.') {
            last_dot = i;
        } else {
            m.unstuffed += c;
        }
        line_start = c == '\n' && i > start && wire[i - 1] == '\r';
    }
    m.withheld_cr =
        last_dot != std::string::npos && last_dot + 2 == wire.size() && wire.back() == '\r';
    if (m.withheld_cr) {
        m.unstuffed.pop_back();
    }
    return m;
}

/// How many octets of a message's unstuffed text the session may hand out: all of them, or
/// those before the first octet that would make its line (CRLF included) longer than
/// data_line or the message longer than message_size.
struct delivery_cut {
    std::size_t octets = 0;
    bool line_too_long = false;
    bool too_big = false;
};

delivery_cut deliverable(std::string_view text, const session_limits& limits) {
    std::size_t line = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const bool line_full = line >= limits.data_line;
        const bool size_full = i >= limits.message_size;
        if (line_full || size_full) {
            return {i, line_full, size_full};
        }
        ++line;
        if (text[i] == '\n' && i > 0 && text[i - 1] == '\r') {
            line = 0;
        }
    }
    return {text.size(), false, false};
}

/// Every line of a rendered reply ends in CRLF, and no CR or LF stands anywhere else: a reply
/// cannot pass for two.
void check_rendered(const reply& r) {
    require(r.code() >= 200 && r.code() <= 599, "a reply code outside 2xx..5xx");
    const std::string wire = r.render();
    std::size_t line_ends = 0;
    for (std::size_t i = 0; i < wire.size(); ++i) {
        if (wire[i] == '\r') {
            require(i + 1 < wire.size() && wire[i + 1] == '\n', "a bare CR in a reply");
        } else if (wire[i] == '\n') {
            require(i > 0 && wire[i - 1] == '\r', "a bare LF in a reply");
            ++line_ends;
        }
    }
    require(line_ends == r.lines().size() && wire.ends_with("\r\n"),
            "a reply rendered with more or fewer lines than it has");
}

session_limits limits_for(std::uint8_t options) {
    session_limits l;
    if ((options & 0x01u) != 0) {
        l.command_line = 24;
    }
    if ((options & 0x02u) != 0) {
        l.data_line = 12;
    }
    if ((options & 0x04u) != 0) {
        l.message_size = 100;
    }
    if ((options & 0x08u) != 0) {
        l.recipients = 2;
    }
    return l;
}

reply delivery_result(std::uint8_t choice) {
    switch (choice & 0x03u) {
    case 2:
        return replies::local_error;
    case 3:
        // Relayed text may carry line ends; the session must not send them on as such.
        return *reply::relayed(452, enhanced_code{4, 2, 2}, {"Mailbox is full", "quota\r\n250 x"});
    default:
        return replies::delivered;
    }
}

class driver {
public:
    explicit driver(const fuzz::split_input& in)
        : limits_(limits_for(in.options)), reverse_completion_((in.options & 0x10u) != 0),
          choices_(in.choices), session_(session_options{"mx.example.org", limits_}) {}

    void run(const std::vector<std::string_view>& pieces) {
        session_.start();
        pump();
        for (std::string_view piece : pieces) {
            // Answers held back until the next read: this read comes first.
            auto verification = std::exchange(held_verification_, std::nullopt);
            auto completions = std::exchange(held_completions_, {});
            wire_.append(piece);
            session_.feed(piece);
            pump();
            answer(std::move(verification), std::move(completions));
            between_reads();
        }
        // The client sends no more: every answer still held back is given now.
        last_read_done_ = true;
        while (held_verification_ || !held_completions_.empty()) {
            answer(std::exchange(held_verification_, std::nullopt),
                   std::exchange(held_completions_, {}));
        }
        check_end();
    }

private:
    using verification = std::optional<std::optional<reply>>;
    using completions = std::vector<std::pair<std::size_t, reply>>;

    // Drains the session's events, one batch per call into it, and gives the answers they ask
    // for after each batch, as the server's event queue does.
    void pump() {
        for (;;) {
            auto batch = session_.take_events();
            if (batch.empty()) {
                return;
            }
            require(!closed_, "events after close");
            bool previous_body = false;
            for (std::size_t i = 0; i < batch.size(); ++i) {
                const bool body = std::holds_alternative<events::body>(batch[i]);
                require(!(body && previous_body), "two body events from one call");
                previous_body = body;
                require(!std::holds_alternative<events::verify_recipient>(batch[i]) ||
                            i + 1 == batch.size(),
                        "an event after verify_recipient");
                std::visit([this](const auto& e) { on(e); }, batch[i]);
            }
            answer(std::exchange(verification_, std::nullopt), std::exchange(completions_, {}));
        }
    }

    void answer(verification v, completions c) {
        if (v) {
            if (session_.current_phase() == session::phase::verifying) {
                verify_reply_code_ = *v ? (*v)->code() : replies::recipient_ok.code();
            }
            session_.recipient_verified(std::move(*v));
            pump();
        }
        for (auto& [index, result] : c) {
            session_.complete_recipient(index, std::move(result));
            pump();
        }
    }

    void between_reads() {
        const std::uint8_t c = choices_.next();
        if (c != 0xfe && c != 0xff) {
            return;
        }
        closing_reply_due_ = session_.current_phase() != session::phase::closed;
        if (c == 0xfe) {
            session_.timed_out();
        } else {
            session_.shut_down();
        }
        pump();
    }

    void on(const events::send& e) {
        check_rendered(e.what);
        require(!begin_due_, "no begin_data after 354");
        const std::uint16_t code = e.what.code();
        if (std::exchange(closing_reply_due_, false)) {
            require(code == 421, "no 421 on a timeout or shutdown");
            return;
        }
        if (std::exchange(greeting_due_, false)) {
            require(code == 220, "no 220 greeting");
            return;
        }
        if (verify_reply_code_ != 0) {
            require(code == std::exchange(verify_reply_code_, 0),
                    "a RCPT answered otherwise than the verification said");
            return;
        }
        if (in_data_ && discarded_) {
            // The replies to a discarded message come at its final dot.
            end_message();
            per_recipient_codes_.assign(recipients_, discard_why_.code());
        }
        if (!per_recipient_codes_.empty()) {
            // RFC 2033 §4.2: one reply per recipient, in RCPT order.
            require(code == per_recipient_codes_.front(), "a recipient's reply out of RCPT order");
            per_recipient_codes_.pop_front();
            return;
        }
        require(!in_data_, "a reply in the middle of a message");
        next_command_line();
        if (e.what.code() == 354) {
            in_data_ = true;
            begin_due_ = true;
            discarded_ = false;
            body_.clear();
            data_start_ = pos_;
        }
    }

    void on(const events::verify_recipient&) {
        require(!in_data_ && !begin_due_, "verify_recipient inside a message");
        next_command_line();
        const std::uint8_t c = choices_.next();
        verification v(std::in_place);
        if ((c & 0x01u) != 0) {
            *v = reply(replies::unknown_recipient);
        }
        ((c & 0x02u) != 0 && !last_read_done_ ? held_verification_ : verification_) = std::move(v);
    }

    void on(const events::begin_data& e) {
        require(std::exchange(begin_due_, false), "begin_data without 354");
        recipients_ = e.env.recipients.size();
        require(recipients_ > 0, "DATA accepted without recipients");
    }

    void on(const events::body& e) {
        require(in_data_ && !begin_due_, "a body event outside a message");
        require(!discarded_, "a body event after discard_data");
        require(!e.bytes.empty(), "an empty body event");
        body_ += e.bytes;
    }

    void on(const events::discard_data& e) {
        require(in_data_ && !begin_due_ && !discarded_, "discard_data outside a message");
        discarded_ = true;
        discard_why_ = e.why;
    }

    void on(const events::end_data& e) {
        require(in_data_ && !begin_due_ && !discarded_, "end_data outside a message");
        require(e.recipients == recipients_, "end_data for another number of recipients");
        end_message();
        completions c;
        bool hold = false;
        for (std::size_t i = 0; i < recipients_; ++i) {
            const std::uint8_t choice = choices_.next();
            hold = hold || (i == 0 && (choice & 0x04u) != 0);
            c.emplace_back(i, delivery_result(choice));
            per_recipient_codes_.push_back(c.back().second.code());
        }
        if (reverse_completion_) {
            std::reverse(c.begin(), c.end());
        }
        (hold && !last_read_done_ ? held_completions_ : completions_) = std::move(c);
    }

    void on(const events::close&) { closed_ = true; }

    void next_command_line() {
        const std::size_t crlf = wire_.find("\r\n", pos_);
        require(crlf != std::string::npos, "a reply to a command line that has not ended");
        pos_ = crlf + 2;
    }

    void end_message() {
        const message_text m = read_message(wire_, data_start_);
        require(m.end != std::string::npos, "the message ended where the input has no CRLF.CRLF");
        check_body(m.unstuffed);
        pos_ = m.end + 3;
        in_data_ = false;
    }

    void check_body(std::string_view unstuffed) {
        const delivery_cut cut = deliverable(unstuffed, limits_);
        const std::string_view want = unstuffed.substr(0, cut.octets);
        const std::string_view got = body_;
        require(!(got.size() < want.size() && want.starts_with(got)),
                "the message ended (or stalled) before its CRLF.CRLF");
        require(!(got.size() > want.size() && got.starts_with(want)),
                "the message went on past its CRLF.CRLF or a limit");
        require(got == want, "the message handed out is not the dot-unstuffed input");
        const bool crossed = cut.line_too_long || cut.too_big;
        require(crossed == discarded_, crossed ? "a limit was crossed and the message kept"
                                               : "the message discarded within the limits");
        if (crossed) {
            const std::uint16_t code = discard_why_.code();
            require((code == replies::data_line_too_long.code() && cut.line_too_long) ||
                        (code == replies::message_too_big.code() && cut.too_big),
                    "the message discarded for a limit it did not cross");
        }
    }

    void check_end() {
        if (closed_) {
            return;
        }
        require(!begin_due_ && verify_reply_code_ == 0 && per_recipient_codes_.empty(),
                "replies missing at the end");
        if (in_data_) {
            require(session_.current_phase() == session::phase::data,
                    "inside a message, but not reading one");
            const message_text m = read_message(wire_, data_start_);
            require(m.end == std::string::npos, "CRLF.CRLF arrived but the message goes on");
            check_body(m.unstuffed);
            return;
        }
        require(wire_.find("\r\n", pos_) == std::string::npos, "a command line without a reply");
        const auto phase = session_.current_phase();
        require(phase == session::phase::idle || phase == session::phase::command,
                "waiting for nothing, but not reading commands");
    }

    session_limits limits_;
    bool reverse_completion_;
    fuzz::choice_reader choices_;
    session session_;

    // The answers to give after the current batch, or after the next read.
    verification verification_;
    completions completions_;
    verification held_verification_;
    completions held_completions_;
    bool last_read_done_ = false;

    // The oracle: all client bytes so far, and how far its reading of them has got.
    std::string wire_;
    std::size_t pos_ = 0;
    bool greeting_due_ = true;
    bool closing_reply_due_ = false;
    std::uint16_t verify_reply_code_ = 0; // the reply a verification's answer brings, if due
    std::deque<std::uint16_t> per_recipient_codes_; // the replies due after a message, in order
    bool closed_ = false;
    // The message being read: where it starts in wire_, what the session handed out of it.
    bool in_data_ = false;
    bool begin_due_ = false;
    std::size_t data_start_ = 0;
    std::size_t recipients_ = 0;
    std::string body_;
    bool discarded_ = false;
    reply discard_why_ = replies::local_error;
};

} // namespace
} // namespace mailseal::lmtp

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto in = mailseal::fuzz::split_input::parse(data, size);
    mailseal::lmtp::driver(in).run(in.pieces());
    return 0;
}
