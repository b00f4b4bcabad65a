// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Internal helpers of the S/MIME format: DER and digests, certificate fields as text, key
/// classification, and reading PEM files. Not installed; include/mailseal/seal/smime/ has the
/// API.

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <mailseal/seal/smime/certificate_file.hpp>
#include <mailseal/seal/smime/evaluate.hpp>
#include <mailseal/seal/smime/openssl.hpp>

namespace mailseal::seal::smime::detail {

using bytes = std::vector<std::uint8_t>;

bytes certificate_der(X509& cert);
/// The certificate's SubjectPublicKeyInfo as encoded in it (what selector 1 hashes).
bytes certificate_spki_der(X509& cert);
/// The key's SubjectPublicKeyInfo as OpenSSL encodes it (the de-duplication identity).
bytes public_key_der(EVP_PKEY& key);

/// SHA-256 (matching type 1) or SHA-512 (2); empty if the digest fails.
bytes digest(const EVP_MD* md, std::span<const std::uint8_t> data);
std::string hex(std::span<const std::uint8_t> data);
std::string upper_hex(std::span<const std::uint8_t> data);

/// Seconds since the epoch; nullopt for a time OpenSSL cannot read.
std::optional<std::time_t> to_time(const ASN1_TIME* t);
/// "2025-01-01"
std::string iso_date(std::time_t t);

/// The subject as RFC 2253 text with UTF-8 kept, e.g. "CN=Alice,O=Example".
std::string subject_text(X509& cert);
/// The rfc822Name entries of subjectAltName, in order.
std::vector<std::string> san_emails(X509& cert);

/// What a public key is, and why it cannot be used for S/MIME encryption (empty if it can).
struct key_class {
    std::optional<key_type> type;
    int bits = 0;
    std::string description; ///< "RSA 2048", "EC P-256", "X25519", ...
    std::string unusable;    ///< e.g. "RSA 1024 bits: below 2048"
};
key_class classify(EVP_PKEY& key);

/// Parses a DER certificate or SubjectPublicKeyInfo that must fill the whole buffer: a parse
/// failure and trailing bytes are errors, described in `error`.
struct parsed_certificate {
    c_ptr<X509> certificate;
    std::string error;
};
parsed_certificate parse_certificate_der(std::span<const std::uint8_t> der);
struct parsed_key {
    c_ptr<EVP_PKEY> key;
    std::string error;
};
parsed_key parse_spki_der(std::span<const std::uint8_t> der);

/// Reads a PEM file of at most `max_size` bytes (see certificate_file.hpp for what is
/// reported).
certificate_listing read_pem_file(const std::filesystem::path& file, std::uintmax_t max_size);

} // namespace mailseal::seal::smime::detail
