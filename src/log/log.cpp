#include <atomic>
#include <cstdio>
#include <syslog.h>
#include <unistd.h>

#include <mailseal/log/log.hpp>

namespace mailseal::log {
namespace {

std::atomic<config::log_level> threshold{config::log_level::info};
std::atomic<config::log_format> format{config::log_format::logfmt};
std::atomic<config::log_output> output{config::log_output::standard_error};

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
    append_quoted(line, value, "\\u00");
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
    // One write(2) per line keeps lines from concurrent threads whole.
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
        ssize_t n = ::write(STDERR_FILENO, p, left);
        if (n <= 0) {
            return;
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

} // namespace mailseal::log
