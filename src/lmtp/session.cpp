// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <array>
#include <utility>

#include <mailseal/lmtp/session.hpp>
#include <mailseal/util/ascii.hpp>

namespace mailseal::lmtp {

namespace {

std::string_view trim(std::string_view s) {
    constexpr std::string_view blanks = " \t";
    const std::size_t first = s.find_first_not_of(blanks);
    if (first == std::string_view::npos) {
        return {};
    }
    return s.substr(first, s.find_last_not_of(blanks) - first + 1);
}

std::string_view skip_spaces(std::string_view s) {
    const std::size_t first = s.find_first_not_of(' ');
    return first == std::string_view::npos ? std::string_view() : s.substr(first);
}

// Splits "<path> params" after "FROM:" or "TO:". The path ends at the first '>' outside a
// quoted-string, since a quoted local-part may itself hold '>' or spaces. Returns nullopt when
// there is no bracketed path or something other than a space follows it.
struct path_and_params {
    std::string_view path;
    std::string_view params;
};
std::optional<path_and_params> split_path(std::string_view s) {
    if (s.empty() || s.front() != '<') {
        return std::nullopt;
    }
    bool quoted = false;
    for (std::size_t i = 1; i < s.size(); ++i) {
        const char c = s[i];
        if (quoted && c == '\\') {
            ++i;
        } else if (c == '"') {
            quoted = !quoted;
        } else if (c == '>' && !quoted) {
            const std::string_view rest = s.substr(i + 1);
            if (!rest.empty() && rest.front() != ' ') {
                return std::nullopt;
            }
            return path_and_params{s.substr(0, i + 1), skip_spaces(rest)};
        }
    }
    return std::nullopt;
}

// RFC 5321 §4.1.1.1 wants a Domain or address-literal after LHLO, but §4.1.4 forbids refusing
// mail because it does not match the client. The only client is the local MTA, and refusing
// its name over a detail such as an underscore would stop every delivery, so any single
// printable token is taken.
bool is_lhlo_argument(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c > 32 && c < 127; });
}

// The per-recipient reply prefix after DATA.
std::string angle(const address& a) {
    return '<' + a.str() + "> ";
}

// RFC 5321 §4.2: greeting = ( "220 " (Domain / address-literal) [ SP textstring ] CRLF ), and
// §4.2.3 lists "421 <domain> Service not available": both start with the server's name.
reply with_hostname(const status& s, const std::string& hostname) {
    if (hostname.empty()) {
        return s;
    }
    return reply(s, hostname + ' ' + std::string(s.text()));
}

} // namespace

session::session(session_options options) : options_(std::move(options)) {}

// Built in place: moving a finished `event` into the vector trips GCC 12's
// -Wmaybe-uninitialized inside std::variant.
template <class Event>
void session::emit(Event e) {
    events_.emplace_back(std::in_place_type<Event>, std::move(e));
}

void session::start() {
    emit_reply(with_hostname(replies::greeting, options_.hostname));
}

void session::feed(std::string_view bytes) {
    consume(bytes);
}

void session::recipient_verified(std::optional<reply> refusal) {
    if (phase_ != phase::verifying) {
        return;
    }
    phase_ = phase::command;
    if (refusal) {
        emit_reply(std::move(*refusal));
    } else {
        envelope_.recipients.push_back(std::move(verifying_));
        emit_reply(replies::recipient_ok);
    }
    verifying_ = {};
    const std::string buffered = std::exchange(pending_, {});
    consume(buffered);
}

void session::complete_recipient(std::size_t index, reply result) {
    if (phase_ != phase::delivering || index >= results_.size() || results_[index]) {
        return;
    }
    results_[index] = std::move(result);
    send_completed_results();
}

void session::timed_out() {
    if (phase_ == phase::closed) {
        return;
    }
    close_with(with_hostname(replies::timeout, options_.hostname));
}

void session::shut_down() {
    if (phase_ == phase::closed) {
        return;
    }
    close_with(with_hostname(replies::shutting_down, options_.hostname));
}

std::vector<event> session::take_events() {
    return std::exchange(events_, {});
}

session::phase session::current_phase() const {
    return phase_;
}

bool session::in_transaction() const {
    return have_mail_ || phase_ == phase::verifying || phase_ == phase::data ||
           phase_ == phase::delivering;
}

// Input is cut into command lines and message data here. While the answer to a RCPT or the
// replies to a message are outstanding, what a pipelining client sent meanwhile must not be
// dropped, and its replies must follow the outstanding ones, since the server replies strictly
// in command order (RFC 2920 §3.2). So it waits in pending_ until the answer is in.
void session::consume(std::string_view bytes) {
    while (!bytes.empty()) {
        if (phase_ == phase::closed) {
            break;
        }
        if (phase_ == phase::verifying || phase_ == phase::delivering) {
            pending_.append(bytes);
            break;
        }
        if (phase_ == phase::data) {
            consume_data(bytes);
        } else {
            consume_command(bytes);
        }
    }
    flush_body();
}

// RFC 5321 §2.3.8: "Lines consist of zero or more data characters terminated by the sequence
// ASCII character "CR" (hex value 0D) followed immediately by ASCII character "LF" (hex value
// 0A)." A bare CR or LF never ends a line. Consumes at most one line from `bytes`.
void session::consume_command(std::string_view& bytes) {
    const std::size_t limit = options_.limits.command_line;
    const bool previous_cr = skipping_line_ ? skipped_cr_ : !line_.empty() && line_.back() == '\r';
    std::size_t lf = std::string_view::npos; // index of the LF that ends the line
    if (previous_cr && bytes.front() == '\n') {
        lf = 0;
    } else if (const std::size_t crlf = bytes.find("\r\n"); crlf != std::string_view::npos) {
        lf = crlf + 1;
    }

    if (lf == std::string_view::npos) {
        const bool ends_cr = bytes.back() == '\r';
        if (skipping_line_) {
            skipped_cr_ = ends_cr;
        } else if (line_.size() + bytes.size() + (ends_cr ? 1 : 2) > limit) {
            // RFC 5321 §4.5.3.1.4: the line can no longer fit. Skip it up to its CRLF rather
            // than keep it, so a client cannot make the buffer grow.
            skipping_line_ = true;
            skipped_cr_ = ends_cr;
            line_.clear();
        } else {
            line_.append(bytes);
        }
        bytes = {};
        return;
    }

    const std::string_view piece = bytes.substr(0, lf + 1);
    bytes.remove_prefix(lf + 1);
    if (skipping_line_) {
        skipping_line_ = false;
        skipped_cr_ = false;
        emit_reply(replies::line_too_long);
        return;
    }
    if (line_.size() + piece.size() > limit) {
        line_.clear();
        emit_reply(replies::line_too_long);
        return;
    }
    if (line_.empty()) {
        on_command_line(piece.substr(0, piece.size() - 2));
        return;
    }
    std::string line = std::exchange(line_, {});
    line.append(piece);
    line.resize(line.size() - 2);
    on_command_line(line);
}

void session::on_command_line(std::string_view line) {
    // RFC 5321 §2.3.8 again: a bare CR or LF inside a command line is not a line end, and
    // reading it as one is what SMTP smuggling exploits, so the whole line is refused.
    if (line.empty() || line.find_first_of("\r\n") != std::string_view::npos) {
        emit_reply(replies::bad_command_syntax);
        return;
    }
    const std::size_t space = line.find(' ');
    const std::string_view verb = line.substr(0, space);
    const std::string_view args =
        space == std::string_view::npos ? std::string_view() : trim(line.substr(space + 1));

    struct command {
        std::string_view verb;
        void (session::*handler)(std::string_view);
    };
    static constexpr std::array<command, 8> commands{{
        {"LHLO", &session::cmd_lhlo},
        {"MAIL", &session::cmd_mail},
        {"RCPT", &session::cmd_rcpt},
        {"DATA", &session::cmd_data},
        {"RSET", &session::cmd_rset},
        {"NOOP", &session::cmd_noop},
        {"VRFY", &session::cmd_vrfy},
        {"QUIT", &session::cmd_quit},
    }};
    for (const command& c : commands) {
        if (util::iequals(verb, c.verb)) {
            (this->*c.handler)(args);
            return;
        }
    }
    // RFC 2033 §4.1: LHLO replaces HELO and EHLO; answering them tells a client that was
    // pointed at the wrong port what went wrong.
    if (util::iequals(verb, "HELO") || util::iequals(verb, "EHLO")) {
        emit_reply(replies::use_lhlo);
        return;
    }
    emit_reply(replies::unknown_command);
}

// RFC 2033 §4.1: LHLO has the semantics of EHLO, and RFC 5321 §4.1.4 makes a later EHLO
// "reset the state exactly as if a RSET command had been issued". RFC 2034 §3 exempts its reply
// from enhanced codes. RFC 2033 §5 requires PIPELINING and ENHANCEDSTATUSCODES.
void session::cmd_lhlo(std::string_view args) {
    if (!is_lhlo_argument(args)) {
        emit_reply(replies::syntax_error);
        return;
    }
    reset_transaction();
    greeted_ = true;
    envelope_.lhlo_name = std::string(args);
    emit_reply(reply(replies::lhlo, std::vector<std::string>{
                                        options_.hostname,
                                        "PIPELINING",
                                        "ENHANCEDSTATUSCODES",
                                        "8BITMIME",
                                        "SIZE " + std::to_string(options_.limits.message_size),
                                        "SMTPUTF8",
                                    }));
}

// mail = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF   (RFC 5321 §4.1.1.2)
// Postfix and Dovecot accept a space after the colon; so does mailseal.
void session::cmd_mail(std::string_view args) {
    // RFC 5321 §4.1.4: MAIL needs a preceding EHLO (here LHLO) and no open transaction.
    if (!greeted_ || have_mail_) {
        emit_reply(replies::bad_sequence);
        return;
    }
    constexpr std::string_view from = "FROM:";
    if (!util::istarts_with(args, from)) {
        emit_reply(replies::syntax_error);
        return;
    }
    const auto split = split_path(skip_spaces(args.substr(from.size())));
    if (!split) {
        emit_reply(replies::bad_sender_syntax);
        return;
    }
    auto sender = parse_reverse_path(split->path, true);
    if (!sender) {
        emit_reply(replies::bad_sender_syntax);
        return;
    }
    auto parsed = parse_mail_parameters(split->params);
    if (const auto* error = std::get_if<parameter_error>(&parsed)) {
        emit_reply(*error == parameter_error::unknown ? replies::unknown_parameter
                                                      : replies::syntax_error);
        return;
    }
    auto& params = std::get<mail_parameters>(parsed);
    // RFC 1870: a declared SIZE above the fixed maximum is refused at MAIL with 552.
    if (params.size && *params.size > options_.limits.message_size) {
        emit_reply(replies::message_too_big);
        return;
    }
    // RFC 6531: a non-ASCII reverse-path needs the SMTPUTF8 parameter.
    if (*sender && (*sender)->is_utf8() && !params.smtputf8) {
        emit_reply(replies::smtputf8_required);
        return;
    }
    have_mail_ = true;
    phase_ = phase::command;
    envelope_.sender = std::move(*sender);
    envelope_.parameters = params;
    emit_reply(replies::sender_ok);
}

// rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" / Forward-path )
//        [SP Rcpt-parameters] CRLF   (RFC 5321 §4.1.1.3)
void session::cmd_rcpt(std::string_view args) {
    if (!have_mail_) {
        refuse_rcpt(replies::bad_sequence, "sequence");
        return;
    }
    constexpr std::string_view to = "TO:";
    if (!util::istarts_with(args, to)) {
        refuse_rcpt(replies::syntax_error, "syntax");
        return;
    }
    const auto split = split_path(skip_spaces(args.substr(to.size())));
    if (!split) {
        refuse_rcpt(replies::bad_recipient_syntax, "syntax");
        return;
    }
    auto recipient = parse_forward_path(split->path, true);
    if (!recipient) {
        refuse_rcpt(replies::bad_recipient_syntax, "syntax");
        return;
    }
    // The LHLO reply announces no extension with RCPT parameters (RFC 5321 §4.1.1.11: 555 for
    // parameters that are not recognized).
    if (!split->params.empty()) {
        refuse_rcpt(replies::unknown_parameter, "parameter");
        return;
    }
    if (recipient->is_utf8() && !envelope_.parameters.smtputf8) {
        refuse_rcpt(replies::smtputf8_required, "smtputf8-required");
        return;
    }
    // RFC 5321 §4.5.3.1.10: too many recipients is 452, so the client sends the rest later.
    if (envelope_.recipients.size() >= options_.limits.recipients) {
        refuse_rcpt(replies::too_many_recipients, "too-many-recipients");
        return;
    }
    // Whether the mailbox exists is the caller's to find out, away from the event loop; the
    // reply is sent when recipient_verified() brings the answer.
    verifying_ = *recipient;
    phase_ = phase::verifying;
    emit(events::verify_recipient{std::move(*recipient), envelope_.recipients.size()});
}

void session::cmd_data(std::string_view args) {
    if (!args.empty()) {
        emit_reply(replies::syntax_error);
        return;
    }
    if (!have_mail_) {
        emit_reply(replies::bad_sequence);
        return;
    }
    // RFC 2033 §4.2: "if there were no successful RCPT commands in the mail transaction, the
    // DATA command MUST fail with a 503 reply code."
    if (envelope_.recipients.empty()) {
        emit_reply(replies::no_valid_recipients);
        return;
    }
    emit_reply(replies::start_data);
    emit(events::begin_data{envelope_});
    phase_ = phase::data;
    data_state_ = data_state::line_start;
    line_length_ = 0;
    body_size_ = 0;
    data_failure_.reset();
}

// RFC 5321 §4.1.1.5: rset = "RSET" CRLF. Postfix sends it to probe a cached connection.
void session::cmd_rset(std::string_view args) {
    if (!args.empty()) {
        emit_reply(replies::syntax_error);
        return;
    }
    reset_transaction();
    emit_reply(replies::ok);
}

// RFC 5321 §4.1.1.9: "If a parameter string is specified, servers SHOULD ignore it."
void session::cmd_noop(std::string_view) {
    emit_reply(replies::ok);
}

// RFC 5321 §3.5.3: 252 when the server will not verify but will accept the message.
void session::cmd_vrfy(std::string_view args) {
    emit_reply(args.empty() ? reply(replies::syntax_error) : reply(replies::cannot_vrfy));
}

// RFC 5321 §4.1.1.10: the server MUST send 221 and close. Arguments are ignored rather than
// refused: a client that says QUIT wants to leave.
void session::cmd_quit(std::string_view) {
    close_with(replies::closing);
}

// RFC 5321 §4.5.2: "When a line of mail text is received by the SMTP server, it checks the
// line. If the line is composed of a single period, it is treated as the end of mail
// indicator. If the first character is a period and there are other characters on the line,
// the first character is deleted." Only CRLF ends a line (§2.3.8), so only CRLF "." CRLF ends
// the message; the first line of the message counts as following a CRLF (that of DATA).
void session::consume_data(std::string_view& bytes) {
    // The body is at most what arrived, and what the size limit leaves: one allocation instead
    // of doubling as lines append.
    const auto expected =
        static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), size_room()));
    if (!data_failure_ && body_out_.capacity() - body_out_.size() < expected) {
        body_out_.reserve(body_out_.size() + expected);
    }
    while (!bytes.empty() && phase_ == phase::data) {
        const char c = bytes.front();
        switch (data_state_) {
        case data_state::line_start:
            if (c == '.') {
                data_state_ = data_state::dot;
                bytes.remove_prefix(1);
            } else {
                data_state_ = data_state::in_line;
            }
            break;
        case data_state::dot:
            // Whatever follows, this dot is either the end-of-data mark or stuffing.
            if (c == '\r') {
                data_state_ = data_state::dot_cr;
                bytes.remove_prefix(1);
            } else {
                data_state_ = data_state::in_line;
            }
            break;
        case data_state::dot_cr:
            if (c == '\n') {
                bytes.remove_prefix(1);
                finish_data();
            } else {
                // ".\r" then something else: the line had more than the dot, so the dot was
                // stuffing and the CR is data.
                accept_body("\r");
                data_state_ = data_state::cr;
            }
            break;
        case data_state::in_line: {
            if (const std::size_t lines = plain_lines(bytes); lines > 0) {
                accept_lines(bytes.substr(0, lines));
                bytes.remove_prefix(lines);
                line_length_ = 0;
                data_state_ = data_state::line_start;
                break;
            }
            // A line over the limit, one with a bare CR, or one not yet ended: up to its first
            // CR, which the states take.
            const std::size_t cr = bytes.find('\r');
            accept_body(bytes.substr(0, cr));
            if (cr == std::string_view::npos) {
                bytes = {};
            } else {
                accept_body("\r");
                bytes.remove_prefix(cr + 1);
                data_state_ = data_state::cr;
            }
            break;
        }
        case data_state::cr:
            if (c == '\n') {
                accept_body("\n");
                bytes.remove_prefix(1);
                line_length_ = 0;
                data_state_ = data_state::line_start;
            } else {
                data_state_ = data_state::in_line;
            }
            break;
        }
    }
}

// Most of a message is lines that need none of the octet-by-octet states: found here, they go to
// the body in one append; one append per line was most of the event loop's work on a large
// message. A line that starts with a dot, one over the limit, one with a bare CR and one not yet
// ended are left to those states. Stopping at a bare CR keeps the scan linear: the states take
// it and the octets before it, and the search starts again after it.
std::size_t session::plain_lines(std::string_view bytes) const {
    const std::uint64_t line_limit = options_.limits.data_line;
    std::size_t taken = 0;
    std::size_t line_begin = 0;
    std::uint64_t before = line_length_; // octets of the first line delivered already
    for (;;) {
        const std::size_t cr = bytes.find('\r', line_begin);
        if (cr == std::string_view::npos || cr + 1 >= bytes.size() || bytes[cr + 1] != '\n') {
            return taken;
        }
        const std::size_t end = cr + 2;
        if (before + (end - line_begin) > line_limit) {
            return taken;
        }
        taken = end;
        if (end == bytes.size() || bytes[end] == '.') {
            return taken;
        }
        line_begin = end;
        before = 0;
    }
}

std::uint64_t session::size_room() const {
    const std::uint64_t limit = options_.limits.message_size;
    return limit > body_size_ ? limit - body_size_ : 0;
}

// Whole lines that plain_lines() found within the line limit: only the message size can stop
// them, and accept_body() would give the same octets and the same reply.
void session::accept_lines(std::string_view lines) {
    if (data_failure_) {
        return;
    }
    const std::uint64_t take = std::min<std::uint64_t>(lines.size(), size_room());
    body_out_.append(lines.substr(0, take));
    body_size_ += take;
    if (take < lines.size()) {
        fail_data(replies::message_too_big);
    }
}

// Appends message octets, enforcing the message size (RFC 1870) and the line length (RFC 5321
// §4.5.3.1.6, counted after unstuffing). The octet that crosses a limit is the first one not
// delivered; the decision depends only on the octets, not on how they were split into feeds.
void session::accept_body(std::string_view content) {
    if (data_failure_ || content.empty()) {
        return;
    }
    const auto& limits = options_.limits;
    const std::uint64_t line_room =
        limits.data_line > line_length_ ? limits.data_line - line_length_ : 0;
    const std::uint64_t size_left = size_room();
    const std::uint64_t take = std::min<std::uint64_t>({content.size(), line_room, size_left});
    body_out_.append(content.substr(0, take));
    line_length_ += take;
    body_size_ += take;
    if (take < content.size()) {
        fail_data(line_room < size_left ? replies::data_line_too_long : replies::message_too_big);
    }
}

void session::fail_data(const reply& why) {
    flush_body();
    data_failure_ = why;
    emit(events::discard_data{why});
}

void session::finish_data() {
    if (data_failure_) {
        // RFC 2033 §4.2: one reply per successful RCPT, even when the message is refused.
        for (const address& a : envelope_.recipients) {
            emit_reply(data_failure_->with_prefix(angle(a)));
        }
        reset_transaction();
        return;
    }
    flush_body();
    emit(events::end_data{envelope_.recipients.size()});
    phase_ = phase::delivering;
    results_.assign(envelope_.recipients.size(), std::nullopt);
    next_result_ = 0;
}

void session::flush_body() {
    if (!body_out_.empty()) {
        emit(events::body{std::exchange(body_out_, {})});
    }
}

// RFC 2033 §4.2: the replies after the final dot go out in RCPT order. Each goes out as soon
// as it and all before it are known, so a client whose data-done timer expires (Postfix:
// lmtp_data_done_timeout) has as many answers as possible and delivers few twice.
void session::send_completed_results() {
    while (next_result_ < results_.size() && results_[next_result_]) {
        emit_reply(results_[next_result_]->with_prefix(angle(envelope_.recipients[next_result_])));
        ++next_result_;
    }
    if (next_result_ < results_.size()) {
        return;
    }
    reset_transaction();
    const std::string buffered = std::exchange(pending_, {});
    consume(buffered);
}

void session::emit_reply(reply r) {
    emit(events::send{std::move(r)});
}

void session::refuse_rcpt(reply r, std::string_view reason) {
    emit(events::send{std::move(r), reason});
}

void session::close_with(reply r) {
    emit_reply(std::move(r));
    emit(events::close{});
    reset_transaction();
    phase_ = phase::closed;
    line_.clear();
    pending_.clear();
    skipping_line_ = false;
}

void session::reset_transaction() {
    have_mail_ = false;
    envelope_ = envelope{std::move(envelope_.lhlo_name), {}, {}, {}};
    data_state_ = data_state::line_start;
    line_length_ = 0;
    body_size_ = 0;
    data_failure_.reset();
    body_out_.clear();
    results_.clear();
    next_result_ = 0;
    if (phase_ != phase::closed) {
        phase_ = phase::idle;
    }
}

std::string_view to_string(session::phase p) {
    switch (p) {
    case session::phase::idle:
        return "idle";
    case session::phase::command:
        return "command";
    case session::phase::verifying:
        return "verifying";
    case session::phase::data:
        return "data";
    case session::phase::delivering:
        return "delivering";
    case session::phase::closed:
        return "closed";
    }
    return "unknown";
}

} // namespace mailseal::lmtp
