#include <array>
#include <cstdlib>
#include <idn2.h>
#include <memory>

#include <openssl/evp.h>

#include <mailseal/dns/smimea.hpp>

namespace mailseal::dns {
namespace {

constexpr std::string_view lower_hex = "0123456789abcdef";
constexpr std::string_view upper_hex = "0123456789ABCDEF";

std::string to_hex(std::span<const std::uint8_t> bytes, std::string_view digits) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (std::uint8_t b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 0xf];
    }
    return out;
}

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
    for (char c : label) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
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

std::string smimea_owner_name(std::string_view local_part, std::string_view a_label_domain) {
    // RFC 8162 §3: "The local-part is hashed using the SHA2-256 algorithm, with the hash
    // truncated to 28 octets and represented in its hexadecimal representation, to become the
    // left-most label in the prepared domain name." (SHA-224 would give a different value.)
    std::array<std::uint8_t, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    if (EVP_Digest(local_part.data(), local_part.size(), digest.data(), &length, EVP_sha256(),
                   nullptr) != 1 ||
        length != 32) {
        // SHA-256 is always present in OpenSSL's default provider; losing it is not a DNS
        // problem a caller could handle.
        std::abort();
    }
    constexpr std::size_t truncated = 28;
    return to_hex(std::span(digest.data(), truncated), lower_hex) + "._smimecert." +
           std::string(a_label_domain);
}

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

std::optional<smimea_record> parse_smimea_rdata(std::span<const std::uint8_t> rdata) {
    // RFC 6698 §2.1: usage (1 octet), selector (1), matching type (1), association data.
    if (rdata.size() < 3) {
        return std::nullopt;
    }
    return smimea_record{rdata[0], rdata[1], rdata[2], {rdata.begin() + 3, rdata.end()}};
}

std::string to_presentation(const smimea_record& record) {
    std::string out = std::to_string(record.usage) + " " + std::to_string(record.selector) + " " +
                      std::to_string(record.matching_type);
    if (!record.data.empty()) {
        out += " " + to_hex(record.data, upper_hex);
    }
    return out;
}

std::string to_generic(const smimea_record& record) {
    // RFC 3597 §5: "\#" <length in octets> <RDATA as hex>.
    std::array<std::uint8_t, 3> fixed{record.usage, record.selector, record.matching_type};
    return "\\# " + std::to_string(fixed.size() + record.data.size()) + " " +
           to_hex(fixed, upper_hex) + to_hex(record.data, upper_hex);
}

} // namespace mailseal::dns
