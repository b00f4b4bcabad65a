// SPDX-License-Identifier: Apache-2.0
#include <utility>

#include <mailseal/relay/reply_parser.hpp>

namespace mailseal::relay {

std::string peer_reply::summary() const {
    std::string out = std::to_string(code);
    if (enhanced) {
        out += " " + enhanced->str();
    }
    if (!lines.empty() && !lines.front().empty()) {
        out += " " + lines.front();
    }
    return out;
}

std::optional<lmtp::reply> peer_reply::to_reply() const {
    return lmtp::reply::relayed(code, enhanced, lines);
}

namespace {

bool digit(char c) {
    return c >= '0' && c <= '9';
}

/// Reads 1..3 digits at `pos`, advancing it; nullopt when there are none.
std::optional<std::uint16_t> number(std::string_view text, std::size_t& pos) {
    std::size_t start = pos;
    std::uint16_t value = 0;
    while (pos < text.size() && digit(text[pos]) && pos - start < 3) {
        value = static_cast<std::uint16_t>(value * 10 + (text[pos] - '0'));
        ++pos;
    }
    if (pos == start) {
        return std::nullopt;
    }
    return value;
}

} // namespace

std::optional<lmtp::enhanced_code> parse_enhanced_code(std::string_view text) {
    // RFC 3463: class "." subject "." detail; subject 1..3 digits, detail 1..3 digits.
    if (text.size() < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.') {
        return std::nullopt;
    }
    std::size_t pos = 2;
    auto subject = number(text, pos);
    if (!subject || pos >= text.size() || text[pos] != '.') {
        return std::nullopt;
    }
    ++pos;
    auto detail = number(text, pos);
    if (!detail || (pos < text.size() && text[pos] != ' ')) {
        return std::nullopt;
    }
    return lmtp::enhanced_code{static_cast<std::uint8_t>(text[0] - '0'), *subject, *detail};
}

void reply_parser::feed(std::string_view bytes) {
    if (!error_) {
        buffer_.append(bytes);
    }
}

std::optional<std::variant<peer_reply, std::string>> reply_parser::next() {
    while (!error_) {
        auto lf = buffer_.find('\n');
        if (lf == std::string::npos) {
            // A CR at the end may be the line's own, with its LF in the next read: the limit
            // must not depend on where the reads were cut.
            if (buffer_.size() - (buffer_.ends_with('\r') ? 1 : 0) > max_line) {
                error_ = "reply line longer than " + std::to_string(max_line) + " octets";
                break;
            }
            return std::nullopt;
        }
        std::string_view line(buffer_.data(), lf);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (line.size() > max_line) {
            error_ = "reply line longer than " + std::to_string(max_line) + " octets";
            break;
        }
        if (line.size() < 3 || !digit(line[0]) || !digit(line[1]) || !digit(line[2]) ||
            (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
            error_ = "not a reply line";
            break;
        }
        auto code = static_cast<std::uint16_t>((line[0] - '0') * 100 + (line[1] - '0') * 10 +
                                               (line[2] - '0'));
        if (!partial_.lines.empty() && code != partial_.code) {
            error_ = "reply lines with different codes";
            break;
        }
        bool last = line.size() == 3 || line[3] == ' ';
        std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view();
        if (partial_.lines.empty()) {
            partial_.code = code;
            partial_.enhanced = parse_enhanced_code(text);
        }
        if (partial_.enhanced) {
            auto here = parse_enhanced_code(text);
            if (here && *here == *partial_.enhanced) {
                auto space = text.find(' ');
                text =
                    space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
            }
        }
        partial_.lines.emplace_back(text);
        buffer_.erase(0, lf + 1);
        if (last) {
            return std::exchange(partial_, peer_reply{});
        }
        if (partial_.lines.size() >= max_lines) {
            error_ = "reply longer than " + std::to_string(max_lines) + " lines";
            break;
        }
    }
    buffer_.clear();
    return *error_;
}

} // namespace mailseal::relay
