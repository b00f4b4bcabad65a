// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Structured logging: one logfmt (or JSON) line per event on stderr (journald adds the time),
/// or to syslog (facility mail).
///
/// When stderr is the journal's stream (JOURNAL_STREAM names it), each line goes through the
/// journal's native protocol instead: the line as MESSAGE, its level as PRIORITY (err, warning,
/// info, debug), and every field as MAILSEAL_<KEY> (MAILSEAL_EVENT, MAILSEAL_RCPT,
/// MAILSEAL_DECISION, ...), so `journalctl -p warning` and field matches work; without the
/// journal's socket, the stream gets the line behind a "<N>" priority prefix (sd-daemon(3)).
///
/// In the JSON format, the fields that hold counts, sizes and durations (size, ms, bytes,
/// connections, messages, sealed, ...) are JSON numbers.
///
/// `log::info("delivered", {{"session", id}, {"rcpt", addr}})` prints
/// `level=info event=delivered session=... rcpt=...`. Values with spaces, quotes, '=' or control
/// characters are quoted and escaped, so a hostile address cannot forge a field or a line.
/// Message content is never logged: callers pass envelope data and outcomes only.

#include <exception>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <mailseal/config/config.hpp>

namespace mailseal::log {

using field = std::pair<std::string_view, std::string_view>;

/// From here on, what libraries write to stderr themselves (librnp's diagnostics on malformed
/// keys or an abandoned encryption) becomes `event=library-output text="..."` at warning level,
/// so that every line of the log is mailseal's, in its format, with control characters escaped.
/// stderr becomes a pipe that a thread reads; the log writes to a copy of the original stderr.
/// For the daemon, whose every line of its own goes through the log; call once. An error text
/// when it could not be set up.
std::optional<std::string> capture_library_output();

/// Whether `fd` is the journal's stream: systemd names the stream it gives a service's
/// standard output and error in JOURNAL_STREAM ("device:inode", systemd.exec(5)).
bool is_journal_stream(int fd);

void set_level(config::log_level level);
void set_format(config::log_format format);
void set_output(config::log_output output);
bool enabled(config::log_level level);

void write(config::log_level level, std::string_view event, std::initializer_list<field> fields);

inline void debug(std::string_view event, std::initializer_list<field> fields = {}) {
    write(config::log_level::debug, event, fields);
}
inline void info(std::string_view event, std::initializer_list<field> fields = {}) {
    write(config::log_level::info, event, fields);
}
inline void warning(std::string_view event, std::initializer_list<field> fields = {}) {
    write(config::log_level::warning, event, fields);
}
inline void error(std::string_view event, std::initializer_list<field> fields = {}) {
    write(config::log_level::error, event, fields);
}
/// An exception that ended a coroutine, as `event` with its what() in `error`; nothing for a
/// null pointer (the coroutine ended normally).
void error(std::string_view event, std::exception_ptr e);

/// Appends `key=value` to `line` in logfmt, quoting and escaping the value when needed.
void append_field(std::string& line, std::string_view key, std::string_view value);
/// Appends `"key":"value"` to a JSON object being built in `line` (after its `{`).
void append_json_field(std::string& line, std::string_view key, std::string_view value);

} // namespace mailseal::log
