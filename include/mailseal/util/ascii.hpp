// SPDX-License-Identifier: Apache-2.0
#pragma once

/// ASCII-only case handling for protocol keywords, domains and local parts. Mail syntax is
/// case-insensitive for ASCII letters only (RFC 5321 §2.4); bytes of UTF-8 text are left alone,
/// and nothing here depends on the C locale.

#include <algorithm>
#include <string>
#include <string_view>

namespace mailseal::util {

constexpr char ascii_lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string ascii_lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) { return ascii_lower(c); });
    return out;
}

constexpr bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return ascii_lower(x) == ascii_lower(y);
           });
}

constexpr bool istarts_with(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

/// `text` without leading and trailing spaces, tabs, CRs and LFs.
constexpr std::string_view trim(std::string_view text) {
    auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
        return {};
    }
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

/// `text` with every control character (C0 and DEL) replaced by '?': for one-line output of
/// strings that come from outside, such as certificate subjects, so that none can start a line
/// of its own.
inline std::string printable(std::string_view text) {
    std::string out(text);
    std::replace_if(
        out.begin(), out.end(),
        [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }, '?');
    return out;
}

} // namespace mailseal::util
