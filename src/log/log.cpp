#include <atomic>
#include <cstdio>
#include <unistd.h>

#include <mailseal/log/log.hpp>

namespace mailseal::log {
namespace {

std::atomic<config::log_level> threshold{config::log_level::info};

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

} // namespace

void set_level(config::log_level level) {
    threshold.store(level);
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
    line += '"';
    for (unsigned char c : value) {
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
                line += "\\x";
                line += hex[c >> 4];
                line += hex[c & 0xf];
            } else {
                line += static_cast<char>(c);
            }
        }
    }
    line += '"';
}

void write(config::log_level level, std::string_view event, std::initializer_list<field> fields) {
    if (!enabled(level)) {
        return;
    }
    std::string line;
    append_field(line, "level", config::to_string(level));
    append_field(line, "event", event);
    for (const auto& [key, value] : fields) {
        append_field(line, key, value);
    }
    line += '\n';
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
