// SPDX-License-Identifier: Apache-2.0
#include <utility>

#include <mailseal/lmtp/reply.hpp>

namespace mailseal::lmtp {

namespace {

// Reply text comes partly from outside the session (the recipient policy, delivery errors). A
// CR or LF inside it would end the reply line early and let the rest pass for another reply,
// so render() turns them into spaces.
void append_text(std::string& out, std::string_view text) {
    for (char c : text) {
        out.push_back(c == '\r' || c == '\n' ? ' ' : c);
    }
}

} // namespace

std::string enhanced_code::str() const {
    return std::to_string(cls) + '.' + std::to_string(subject) + '.' + std::to_string(detail);
}

reply::reply(const status& s) : reply(s, std::string(s.text())) {}

reply::reply(const status& s, std::string text)
    : code_(s.code()), enhanced_(s.enhanced()), lines_{std::move(text)} {}

// An empty list would leave text() without a first line; it means "the status's own text".
reply::reply(const status& s, std::vector<std::string> lines)
    : code_(s.code()), enhanced_(s.enhanced()), lines_(std::move(lines)) {
    if (lines_.empty()) {
        lines_.emplace_back(s.text());
    }
}

reply::reply(std::uint16_t code, std::optional<enhanced_code> enhanced,
             std::vector<std::string> lines)
    : code_(code), enhanced_(enhanced), lines_(std::move(lines)) {
    if (lines_.empty()) {
        lines_.emplace_back();
    }
}

std::optional<reply> reply::relayed(std::uint16_t code, std::optional<enhanced_code> enhanced,
                                    std::vector<std::string> lines) {
    if (code < 200 || code > 599) {
        return std::nullopt;
    }
    if (enhanced && enhanced->cls != code / 100) {
        enhanced.reset();
    }
    for (auto& line : lines) {
        for (char& c : line) {
            auto u = static_cast<unsigned char>(c);
            if (u < 0x20 || u == 0x7f) {
                c = '?';
            }
        }
    }
    return reply(code, enhanced, std::move(lines));
}

// RFC 5321 §4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF )
//                             Reply-code [ SP textstring ] CRLF
// RFC 2034 §4 puts the enhanced code at the start of the text of every line.
std::string reply::render() const {
    std::string out;
    const std::string enh = enhanced_ ? enhanced_->str() : std::string();
    for (std::size_t i = 0; i < lines_.size(); ++i) {
        const bool last = i + 1 == lines_.size();
        const std::string& text = lines_[i];
        out += std::to_string(code_);
        if (!last) {
            out += '-';
        } else if (!enh.empty() || !text.empty()) {
            out += ' ';
        }
        out += enh;
        if (!enh.empty() && !text.empty()) {
            out += ' ';
        }
        append_text(out, text);
        out += "\r\n";
    }
    return out;
}

std::string reply::summary() const {
    std::string out = std::to_string(code_);
    if (enhanced_) {
        out += ' ';
        out += enhanced_->str();
    }
    if (!lines_.front().empty()) {
        out += ' ';
        append_text(out, lines_.front());
    }
    return out;
}

reply reply::with_prefix(std::string_view prefix) const {
    reply copy = *this;
    for (std::string& line : copy.lines_) {
        if (!line.starts_with(prefix)) {
            line.insert(0, prefix);
        }
    }
    return copy;
}

} // namespace mailseal::lmtp
