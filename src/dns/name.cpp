// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <idn2.h>
#include <memory>

#include <mailseal/dns/name.hpp>

namespace mailseal::dns {
namespace {

/// libidn2 allocates its output; idn2_free() releases it.
struct idn2_deleter {
    void operator()(char* p) const noexcept { idn2_free(p); }
};

/// RFC 1035 §2.3.4: labels of 63 octets or less. A name is at most 255 octets on the wire,
/// which leaves 253 characters in dotted form without the trailing dot.
constexpr std::size_t max_label = 63;
constexpr std::size_t max_name = 253;

bool is_ldh_label(std::string_view label) {
    if (label.empty() || label.size() > max_label || label.front() == '-' || label.back() == '-') {
        return false;
    }
    return std::all_of(label.begin(), label.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
}

/// Host-name syntax (RFC 1123 §2.1) of an already lowercased ASCII name. libidn2 checks only
/// what IDNA requires and passes "exa_mple", "a..b" or "x y" through unchanged.
bool is_host_name(std::string_view name) {
    if (name.empty() || name.size() > max_name) {
        return false;
    }
    std::size_t start = 0;
    for (;;) {
        auto dot = name.find('.', start);
        auto label = name.substr(start, dot == std::string_view::npos ? dot : dot - start);
        if (!is_ldh_label(label)) {
            return false;
        }
        if (dot == std::string_view::npos) {
            return true;
        }
        start = dot + 1;
    }
}

} // namespace

std::optional<std::string> to_a_label(std::string_view domain) {
    // idn2 takes a NUL-terminated string: an embedded NUL would silently cut the name short.
    if (domain.find('\0') != std::string_view::npos) {
        return std::nullopt;
    }
    std::string input(domain);
    char* raw = nullptr;
    // Non-transitional processing (UTS #46 §4): "faß.de" stays ß (xn--fa-hia.de), as IDNA2008
    // and current browsers and registries have it, instead of becoming "fass.de". The UTS #46
    // mapping also lowercases, ASCII letters included.
    int rc = idn2_to_ascii_8z(input.c_str(), &raw, IDN2_NONTRANSITIONAL);
    std::unique_ptr<char, idn2_deleter> output(raw);
    if (rc != IDN2_OK || output == nullptr) {
        return std::nullopt;
    }
    std::string a_label(output.get());
    if (!is_host_name(a_label)) {
        return std::nullopt;
    }
    return a_label;
}

} // namespace mailseal::dns
