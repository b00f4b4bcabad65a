// SPDX-License-Identifier: Apache-2.0
#include <array>
#include <cstdlib>

#include <openssl/evp.h>

#include <mailseal/dns/lookup.hpp>

namespace mailseal::dns {

std::string_view to_string(outcome o) {
    switch (o) {
    case outcome::secure_records:
        return "secure";
    case outcome::secure_absent:
        return "secure-absent";
    case outcome::insecure:
        return "insecure";
    case outcome::bogus:
        return "bogus";
    case outcome::failure:
        return "failure";
    }
    return "unknown";
}

std::string hashed_owner_name(std::string_view local_part, std::string_view label,
                              std::string_view a_label_domain) {
    // RFC 8162 §3: "The local-part is hashed using the SHA2-256 algorithm, with the hash
    // truncated to 28 octets and represented in its hexadecimal representation, to become the
    // left-most label in the prepared domain name." RFC 7929 §3 says the same. (SHA-224 would
    // give a different value.)
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    if (EVP_Digest(local_part.data(), local_part.size(), digest.data(), &length, EVP_sha256(),
                   nullptr) != 1 ||
        length != 32) {
        // SHA-256 is always present in OpenSSL's default provider; losing it is not a DNS
        // problem a caller could handle.
        std::abort();
    }
    static constexpr std::string_view digits = "0123456789abcdef";
    constexpr std::size_t truncated = 28;
    std::string out;
    out.reserve(2 * truncated + label.size() + a_label_domain.size() + 2);
    for (std::size_t i = 0; i < truncated; ++i) {
        out += digits[digest[i] >> 4];
        out += digits[digest[i] & 0xf];
    }
    out += '.';
    out += label;
    out += '.';
    out += a_label_domain;
    return out;
}

std::string generic_rdata(std::span<const std::uint8_t> rdata) {
    static constexpr std::string_view digits = "0123456789ABCDEF";
    std::string out = "\\# " + std::to_string(rdata.size()) + " ";
    for (auto b : rdata) {
        out += digits[b >> 4];
        out += digits[b & 0xf];
    }
    return out;
}

} // namespace mailseal::dns
