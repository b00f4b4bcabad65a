// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Which certificates a recipient's S/MIME copy may be sealed to, from the SMIMEA records
/// (RFC 8162) that DNSSEC proved and from the operator's local certificate store. docs/keys.md
/// has the rules and the precedence in prose.
///
/// Failure policy: nothing here throws or logs. Every record and every local certificate gets a
/// `candidate_report` saying whether it gave a key and why not; a recipient without keys is an
/// `evaluation` with no keys, and what that means (seal nothing, 4xx, 5xx) is the caller's policy.
/// Only a bogus or failed lookup is final here: it yields no keys and never falls back to the
/// local store, because an attacker who can break DNS answers must not be able to choose which
/// key (or whether any key) is used.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <mailseal/config/config.hpp>
#include <mailseal/dns/lookup.hpp>
#include <mailseal/seal/format.hpp>
#include <mailseal/seal/smime/openssl.hpp>

namespace mailseal::seal::smime {

/// The RR type of SMIMEA (RFC 8162 §2); its wire and presentation formats are TLSA's.
inline constexpr std::uint16_t smimea_rr_type = 53;

/// One SMIMEA RR's RDATA (RFC 6698 §2.1, which RFC 8162 §2 reuses): certificate usage,
/// selector, matching type and the certificate association data. Values are kept as published:
/// unknown ones make the record unusable, not the answer.
struct smimea_record {
    std::uint8_t usage = 0;
    std::uint8_t selector = 0;
    std::uint8_t matching_type = 0;
    std::vector<std::uint8_t> data;

    bool operator==(const smimea_record&) const = default;
};

/// Splits raw RDATA (without RDLENGTH) into its fields. std::nullopt when it is shorter than
/// the three one-octet fields; empty association data is accepted here and judged unusable
/// later.
std::optional<smimea_record> parse_smimea_rdata(std::span<const std::uint8_t> rdata);

/// The presentation form (RFC 6698 §2.2) as dig shows it, association data in uppercase hex
/// without spaces: "3 0 0 308203A1...". A record with empty association data has no valid
/// presentation form; it is written as the three numbers alone (use the RFC 3597 generic form
/// for it).
std::string to_presentation(const smimea_record& record);

/// A certificate from the local store and the file it came from.
struct local_certificate {
    std::shared_ptr<X509> certificate;
    std::filesystem::path path;
};

/// The key types a CMS RecipientInfo can be made for with OpenSSL 3.0 (RSA key transport, ECDH
/// key agreement on the NIST curves of RFC 8551 §2.3). Other keys are never usable.
enum class key_type { rsa, ec_p256, ec_p384 };
std::string_view to_string(key_type);

/// What an S/MIME key is made of.
struct certificate_key final : key_material {
    std::shared_ptr<EVP_PKEY> public_key;
    /// The certificate to name in the RecipientInfo; null for a bare SubjectPublicKeyInfo
    /// (SMIMEA 3 1 0), which must be addressed by subjectKeyIdentifier instead.
    std::shared_ptr<X509> certificate;
    /// DER SubjectPublicKeyInfo, re-encoded by OpenSSL: the identity used to de-duplicate, and
    /// for a bare key the source of the subjectKeyIdentifier that names it in the CMS.
    std::vector<std::uint8_t> spki_der;
    key_type type = key_type::rsa;
};

/// The certificate key inside a key this format made; null for another format's.
const certificate_key* certificate_of(const key& k);

/// The key settings with the S/MIME CA bundle loaded, built once per configuration.
struct trust {
    bool accept_expired_dane_ee = true;
    config::key_preference preference = config::key_preference::rsa_only_if_any;
    /// Trust anchors for usage 1 (PKIX-EE); null when keys.smime_ca_file is not configured.
    std::shared_ptr<X509_STORE> smime_cas{};
    /// When each of those CAs becomes valid, and its notAfter and the second after: a PKIX
    /// verdict can change at any of them.
    std::vector<std::chrono::system_clock::time_point> ca_edges{};
};

/// Reads keys.smime_ca_file (blocking; at start-up). The error names the file and the problem.
std::variant<trust, std::string> load_trust(const config::key_settings& settings);

/// Evaluates DNSSEC-secure records, or the local store when `secure_records` is empty.
///
/// With records, only they bind keys: 3 0 0 and 3 1 0 give keys as they stand, 1 0 0 after
/// PKIX validation against trust::smime_cas, and records of matching type 1/2 (and selector 1
/// matching type 0) confirm the local certificates whose hash matches; unconfirmed local
/// certificates are not used. Without records, each local certificate is used when valid now,
/// naming `address` in an rfc822Name subjectAltName, and passing the key checks.
///
/// `address` is local-part@domain as the certificates should name it: the domain is compared
/// ASCII case-insensitively and the local part exactly (RFC 5280 §7.5).
evaluation evaluate(const std::vector<smimea_record>& secure_records,
                    const std::vector<local_certificate>& local_certs, const trust& pol,
                    std::string_view address, std::chrono::system_clock::time_point now);

/// The precedence between DNS and the local store:
/// - secure_records: evaluate(records, local) — keys from the records, plus local certificates
///   a record confirms. If every record is unusable in the RFC 6698 §4.1 sense (unknown usage,
///   selector or matching type, data that does not parse, a hash of the wrong length), the
///   answer says nothing usable and counts as secure_absent; records that parse but give no key (a
///   weak key, usages 0/2, a hash matching nothing) do not open the local store.
/// - secure_absent, insecure: the local store (RFC 6698 §4.1: an insecure answer is no answer).
/// - bogus, failure: no keys and no reports; never the local store.
evaluation select_keys(dns::outcome outcome, const std::vector<smimea_record>& records,
                       const std::vector<local_certificate>& local_certs, const trust& pol,
                       std::string_view address, std::chrono::system_clock::time_point now);

/// The association data a record with this selector and matching type carries for `cert`
/// (for `mailseal record` and for matching); nullopt for an unknown selector or matching type.
std::optional<std::vector<std::uint8_t>> association_data(X509& cert, std::uint8_t selector,
                                                          std::uint8_t matching_type);

/// A report on a certificate alone (subject, SANs, key, validity, fingerprint; `why` empty).
candidate_report describe(X509& cert, std::string source);

} // namespace mailseal::seal::smime
