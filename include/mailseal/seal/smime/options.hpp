// SPDX-License-Identifier: Apache-2.0
#pragma once

/// S/MIME's sealing options ([seal] cipher and rsa_padding), read by the configuration and
/// used by the CMS encoder. Plain values with no dependencies: the configuration includes this.

#include <string_view>

namespace mailseal::seal::smime {

/// The content-encryption algorithm. CBC goes in EnvelopedData, which every client opens; GCM
/// in AuthEnvelopedData (RFC 5083), which Outlook, NSS (Thunderbird) and gpgsm cannot open yet.
enum class content_cipher { aes_256_cbc, aes_128_cbc, aes_256_gcm, aes_128_gcm };
/// RSA key transport: PKCS#1 v1.5 (every client) or RSAES-OAEP with SHA-256 (RFC 8017).
enum class rsa_padding { pkcs1, oaep };

constexpr std::string_view to_string(content_cipher c) {
    switch (c) {
    case content_cipher::aes_256_cbc:
        return "aes-256-cbc";
    case content_cipher::aes_128_cbc:
        return "aes-128-cbc";
    case content_cipher::aes_256_gcm:
        return "aes-256-gcm";
    case content_cipher::aes_128_gcm:
        return "aes-128-gcm";
    }
    return "unknown";
}

constexpr std::string_view to_string(rsa_padding p) {
    switch (p) {
    case rsa_padding::pkcs1:
        return "pkcs1";
    case rsa_padding::oaep:
        return "oaep";
    }
    return "unknown";
}

struct options {
    content_cipher cipher = content_cipher::aes_256_cbc;
    rsa_padding padding = rsa_padding::pkcs1;

    bool operator==(const options&) const = default;
};

} // namespace mailseal::seal::smime
