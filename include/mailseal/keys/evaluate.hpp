#pragma once

/// Which public keys a recipient's mail may be sealed to, from the SMIMEA records (RFC 8162)
/// that DNSSEC proved and from the operator's local certificate store. docs/keys.md has the rules
/// and the precedence in prose.
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
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <mailseal/config/config.hpp>
#include <mailseal/keys/openssl.hpp>

namespace mailseal::keys {

/// One SMIMEA RR's RDATA (RFC 6698 §2.1, which RFC 8162 §2 reuses), as the resolver decoded it.
/// Values are kept as published: unknown ones make the record unusable, not the answer.
struct smimea_data {
    std::uint8_t usage = 0;
    std::uint8_t selector = 0;
    std::uint8_t matching_type = 0;
    std::vector<std::uint8_t> data;

    bool operator==(const smimea_data&) const = default;
};

/// A certificate from the local store and the file it came from.
struct local_certificate {
    std::shared_ptr<X509> certificate;
    std::filesystem::path path;
};

/// The key types a CMS RecipientInfo can be made for with OpenSSL 3.0 (RSA key transport, ECDH
/// key agreement on the NIST curves of RFC 8551 §2.3). Other keys are never usable.
enum class key_type { rsa, ec_p256, ec_p384 };
std::string_view to_string(key_type);

/// One usable public key.
struct key {
    std::shared_ptr<EVP_PKEY> public_key;
    /// The certificate to name in the RecipientInfo; null for a bare SubjectPublicKeyInfo
    /// (SMIMEA 3 1 0), which must be addressed by subjectKeyIdentifier instead.
    std::shared_ptr<X509> certificate;
    /// DER SubjectPublicKeyInfo, re-encoded by OpenSSL: the identity used to de-duplicate.
    std::vector<std::uint8_t> spki_der;
    key_type type = key_type::rsa;
    int bits = 0;
    /// Where it came from: "smimea #2 3 0 0" (record number in answer order) or "local <path>".
    std::string source;
};

/// What was decided about one record or local certificate, for logs and `mailseal lookup`.
struct candidate_report {
    std::string source;
    /// Passes every check: it gives a key (or, for a hash record, confirms a usable local one).
    bool usable = false;
    /// Its key is among evaluation::keys (usable, not a duplicate, not dropped by preference).
    bool selected = false;
    /// Every finding, "; "-separated: the first failed check, or why it is usable and what
    /// was accepted on the way ("expired 2025-01-01 (accepted: DANE-EE)").
    std::string why;
    /// Certificate details; empty when the data did not parse or there is no certificate.
    std::string subject;
    std::vector<std::string> san_emails;
    /// "RSA 2048", "EC P-256", "X25519", ...
    std::string key_description;
    /// "2025-01-01T00:00:00Z"
    std::string not_before;
    std::string not_after;
    /// SHA-256 of the certificate's DER (of the SPKI for a bare key), lowercase hex: the same
    /// text as the data of a 3 0 1 (3 1 1) record for it.
    std::string sha256_fingerprint;
};

/// Settings with the S/MIME CA bundle loaded, built once per configuration by make_policy().
struct policy {
    bool accept_expired_dane_ee = true;
    config::key_preference preference = config::key_preference::rsa_only_if_any;
    /// Trust anchors for usage 1 (PKIX-EE); null when keys.smime_ca_file is not configured.
    std::shared_ptr<X509_STORE> smime_cas{};
};

/// Reads keys.smime_ca_file (blocking; at start-up). The error names the file and the problem.
std::variant<policy, std::string> make_policy(const config::key_settings& settings);

struct evaluation {
    /// Usable keys, de-duplicated by SPKI, after the RSA preference; in report order.
    std::vector<key> keys;
    /// One per record, then one per local certificate (store file problems stay in
    /// local_listing::problems).
    std::vector<candidate_report> reports;
    /// The precedence rule applied, e.g. "no SMIMEA record (DNSSEC-secure absence): local
    /// certificate store".
    std::string decision;
};

/// Evaluates DNSSEC-secure records, or the local store when `secure_records` is empty.
///
/// With records, only they bind keys: 3 0 0 and 3 1 0 give keys as they stand, 1 0 0 after
/// PKIX validation against policy::smime_cas, and records of matching type 1/2 (and selector 1
/// matching type 0) confirm the local certificates whose hash matches; unconfirmed local
/// certificates are not used. Without records, each local certificate is used when valid now,
/// naming `address` in an rfc822Name subjectAltName, and passing the key checks.
///
/// `address` is local-part@domain as the certificates should name it: the domain is compared
/// ASCII case-insensitively and the local part exactly (RFC 5280 §7.5).
evaluation evaluate(const std::vector<smimea_data>& secure_records,
                    const std::vector<local_certificate>& local_certs, const policy& pol,
                    std::string_view address, std::chrono::system_clock::time_point now);

/// How the SMIMEA lookup ended (mirrors the resolver's outcome, kept separate so this component
/// does not depend on the resolver).
enum class dns_outcome { secure_records, secure_absent, insecure, bogus, failure };
std::string_view to_string(dns_outcome);

/// The precedence between DNS and the local store (issue 3, "Local certificate store"):
/// - secure_records: evaluate(records, local) — keys from the records, plus local certificates
///   a record confirms. If every record is unusable in the RFC 6698 §4.1 sense (unknown usage,
///   selector or matching type, data that does not parse, a hash of the wrong length), the
///   answer says nothing usable and counts as secure_absent; records that parse but give no
///   key (a weak key, usages 0/2, a hash matching nothing) do not open the local store.
/// - secure_absent, insecure: the local store (RFC 6698 §4.1: an insecure answer is no answer).
/// - bogus, failure: no keys and no reports; never the local store.
evaluation select_keys(dns_outcome outcome, const std::vector<smimea_data>& records,
                       const std::vector<local_certificate>& local_certs, const policy& pol,
                       std::string_view address, std::chrono::system_clock::time_point now);

/// The association data a record with this selector and matching type carries for `cert`
/// (for `mailseal record` and for matching); nullopt for an unknown selector or matching type.
std::optional<std::vector<std::uint8_t>> association_data(X509& cert, std::uint8_t selector,
                                                          std::uint8_t matching_type);

/// A report on a certificate alone (subject, SANs, key, validity, fingerprint; `why` empty).
candidate_report describe(X509& cert, std::string source);

} // namespace mailseal::keys
