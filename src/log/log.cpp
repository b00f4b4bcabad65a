// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <mailseal/log/log.hpp>

namespace mailseal::log {
namespace {

std::atomic<config::log_level> threshold{config::log_level::info};
std::atomic<config::log_format> format{config::log_format::logfmt};
std::atomic<config::log_output> output{config::log_output::standard_error};
/// Where the log's lines go: stderr, or once library output is captured, a copy of it.
std::atomic<int> log_fd{STDERR_FILENO};

/// Whether the log's stream is the journal's (JOURNAL_STREAM names it, as systemd sets it for a
/// service's standard output and error): decided once, on the first line.
enum class journal_state { unknown, yes, no };
std::atomic<journal_state> journal{journal_state::unknown};

bool to_journal(int fd) {
    auto state = journal.load();
    if (state == journal_state::unknown) {
        state = is_journal_stream(fd) ? journal_state::yes : journal_state::no;
        journal.store(state);
    }
    return state == journal_state::yes;
}

/// Fields that hold counts, sizes and durations: numbers in the JSON format (when the value is
/// one), strings everywhere else. Sorted.
constexpr std::array<std::string_view, 19> number_fields{
    "anchors", "bytes", "bytes_read", "bytes_written", "connections", "encrypted", "failed",
    "files",   "gid",   "keys",       "limit",         "messages",    "ms",        "needed",
    "sealed",  "size",  "sockets",    "uid",           "would_seal"};

static_assert(std::is_sorted(number_fields.begin(), number_fields.end()));

bool is_number(std::string_view value) {
    if (value.empty() || value.size() > 20) {
        return false;
    }
    std::size_t digits = 0;
    for (char c : value) {
        if (c >= '0' && c <= '9') {
            ++digits;
        } else if (c != '.') {
            return false;
        }
    }
    return digits > 0 && value.front() != '.' && value.back() != '.' &&
           std::count(value.begin(), value.end(), '.') <= 1 &&
           (value.size() == 1 || value.front() != '0' || value[1] == '.');
}

/// journald field names: upper-case letters, digits and underscores, not starting with a digit
/// or an underscore (systemd.journal-fields(7)).
std::string journal_field_name(std::string_view key) {
    std::string name = "MAILSEAL_";
    for (char c : key) {
        name += std::isalnum(static_cast<unsigned char>(c)) != 0
                    ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
                    : '_';
    }
    return name;
}

/// Longest library line kept whole; the rest of a longer one becomes lines of its own.
constexpr std::size_t max_library_line = 4096;

/// Reads what libraries write to the captured stderr and logs it line by line, until the
/// process ends.
void relay_library_output(int from) {
    std::string pending;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(from, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (!pending.empty()) {
                warning("library-output", {{"text", pending}});
            }
            return;
        }
        pending.append(buf, static_cast<std::size_t>(n));
        std::size_t start = 0;
        for (;;) {
            auto end = pending.find('\n', start);
            if (end == std::string::npos && pending.size() - start < max_library_line) {
                break;
            }
            auto len = end == std::string::npos ? max_library_line : end - start;
            warning("library-output", {{"text", std::string_view(pending).substr(start, len)}});
            start += len + (end == std::string::npos ? 0 : 1);
        }
        pending.erase(0, start);
    }
}

/// `text` between double quotes with quotes, backslashes and control characters escaped
/// (other octets as they are); a control character becomes `control_prefix` and two hex
/// digits: "\\x" for logfmt, "\\u00" for JSON (RFC 8259 §7).
void append_quoted(std::string& line, std::string_view text, std::string_view control_prefix) {
    line += '"';
    for (unsigned char c : text) {
        switch (c) {
        case '"':
            line += "\\\"";
            break;
        case '\\':
            line += "\\\\";
            break;
        case '\n':
            line += "\\n";
            break;
        case '\r':
            line += "\\r";
            break;
        case '\t':
            line += "\\t";
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                static constexpr char hex[] = "0123456789abcdef";
                line += control_prefix;
                line += hex[c >> 4];
                line += hex[c & 0xf];
            } else {
                line += static_cast<char>(c);
            }
        }
    }
    line += '"';
}

bool needs_quoting(std::string_view value) {
    if (value.empty()) {
        return true;
    }
    for (unsigned char c : value) {
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) {
            return true;
        }
    }
    return false;
}

int syslog_priority(config::log_level level) {
    switch (level) {
    case config::log_level::debug:
        return LOG_DEBUG;
    case config::log_level::info:
        return LOG_INFO;
    case config::log_level::warning:
        return LOG_WARNING;
    case config::log_level::error:
        return LOG_ERR;
    }
    return LOG_ERR;
}

} // namespace

bool is_journal_stream(int fd) {
    const char* stream = std::getenv("JOURNAL_STREAM");
    struct stat st {};
    return stream != nullptr && ::fstat(fd, &st) == 0 &&
           std::string(stream) == std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

void set_level(config::log_level level) {
    threshold.store(level);
}

void set_format(config::log_format f) {
    format.store(f);
}

void set_output(config::log_output o) {
    if (o == config::log_output::syslog) {
        // LOG_NDELAY: connect to /dev/log now, before a chroot or sandbox could hide it.
        ::openlog("mailseal", LOG_PID | LOG_NDELAY, LOG_MAIL);
    }
    output.store(o);
}

void error(std::string_view event, std::exception_ptr e) {
    if (!e) {
        return;
    }
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        error(event, {{"error", ex.what()}});
    } catch (...) {
        error(event, {{"error", "unknown exception"}});
    }
}

void append_json_field(std::string& line, std::string_view key, std::string_view value) {
    if (line.size() > 1) {
        line += ',';
    }
    append_quoted(line, key, "\\u00");
    line += ':';
    if (std::binary_search(number_fields.begin(), number_fields.end(), key) && is_number(value)) {
        line += value;
        return;
    }
    append_quoted(line, value, "\\u00");
}

std::optional<std::string> capture_library_output() {
    int saved = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    if (saved < 0) {
        return "cannot duplicate stderr: " + std::string(std::strerror(errno));
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        ::close(saved);
        return "cannot make a pipe for library output: " + std::string(std::strerror(errno));
    }
    if (::dup2(fds[1], STDERR_FILENO) < 0) {
        ::close(saved);
        ::close(fds[0]);
        ::close(fds[1]);
        return "cannot redirect stderr: " + std::string(std::strerror(errno));
    }
    ::close(fds[1]);
    log_fd.store(saved);
    std::thread(relay_library_output, fds[0]).detach();
    return std::nullopt;
}

bool enabled(config::log_level level) {
    return level >= threshold.load();
}

void append_field(std::string& line, std::string_view key, std::string_view value) {
    if (!line.empty()) {
        line += ' ';
    }
    line += key;
    line += '=';
    if (!needs_quoting(value)) {
        line += value;
        return;
    }
    append_quoted(line, value, "\\x");
}

void write(config::log_level level, std::string_view event, std::initializer_list<field> fields) {
    if (!enabled(level)) {
        return;
    }
    std::string line;
    if (format.load() == config::log_format::json) {
        line = "{";
        append_json_field(line, "level", config::to_string(level));
        append_json_field(line, "event", event);
        for (const auto& [key, value] : fields) {
            append_json_field(line, key, value);
        }
        line += "}\n";
    } else {
        append_field(line, "level", config::to_string(level));
        append_field(line, "event", event);
        for (const auto& [key, value] : fields) {
            append_field(line, key, value);
        }
        line += '\n';
    }
    if (output.load() == config::log_output::syslog) {
        line.pop_back(); // syslog ends the record itself
        ::syslog(syslog_priority(level), "%s", line.c_str());
        return;
    }
    if (to_journal(log_fd.load())) {
        // The journal's own protocol: the line as MESSAGE, its priority, and each field
        // searchable (journalctl MAILSEAL_EVENT=delivered MAILSEAL_RCPT=...).
        std::vector<std::string> entries;
        entries.reserve(fields.size() + 4);
        entries.push_back("MESSAGE=" + line.substr(0, line.size() - 1));
        entries.push_back("PRIORITY=" + std::to_string(syslog_priority(level)));
        entries.push_back("SYSLOG_IDENTIFIER=mailseal");
        entries.push_back("MAILSEAL_EVENT=" + std::string(event));
        for (const auto& [key, value] : fields) {
            entries.push_back(journal_field_name(key) + "=" + std::string(value));
        }
        std::vector<iovec> vector;
        vector.reserve(entries.size());
        for (auto& e : entries) {
            vector.push_back({e.data(), e.size()});
        }
        if (sd_journal_sendv(vector.data(), static_cast<int>(vector.size())) == 0) {
            return;
        }
        // No journal socket (a sandbox without /run): the stream, with the priority as the
        // prefix journald reads (sd-daemon(3)).
        line.insert(0, "<" + std::to_string(syslog_priority(level)) + ">");
    }
    // One write(2) per line keeps lines from concurrent threads whole.
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
        ssize_t n = ::write(log_fd.load(), p, left);
        if (n <= 0) {
            return;
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

} // namespace mailseal::log
