// SPDX-License-Identifier: Apache-2.0
#pragma once

/// A sealing format: how a user's keys are published and judged, and how a copy is sealed to
/// them. S/MIME (seal/smime/) and OpenPGP (seal/openpgp/) implement it; formats.hpp lists them.
///
/// Everything that crosses a component boundary is format-neutral: key discovery hands each
/// format the DNSSEC-validated RDATA of its record type and the user's files in the local key
/// store, gets back an `evaluation`, and carries the chosen `key_set` to sealing, which asks
/// the key set's format for an `encoder`. What a key is made of (an X.509 certificate, an
/// OpenPGP transferable public key) only its format reads.
///
/// Failure policy: nothing here throws for bad keys or records. Every record, local file and
/// key gets a `candidate_report` saying whether it gave a key and why not; an encoder that
/// cannot seal returns an error text, and the caller answers 451 4.3.0 for that recipient.

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
#include <mailseal/dns/lookup.hpp>

namespace mailseal::seal {

class format;

/// What a key is made of; each format derives its own and only it reads one.
class key_material {
public:
    virtual ~key_material() = default;
};

/// One usable public key.
struct key {
    std::shared_ptr<const key_material> material;
    /// Where it came from: "smimea #2 3 0 0" (record number in answer order), "local <path>".
    std::string source;
    /// The algorithm as logs and tools name it: "rsa", "ec-p256", "ecdh-cv25519", ...
    std::string algorithm;
    int bits = 0;
    /// Lowercase hex that identifies the key: the SHA-256 of the SubjectPublicKeyInfo for
    /// S/MIME, the key fingerprint for OpenPGP.
    std::string fingerprint;
    /// When the certificate or key expires; nullopt when it does not, or cannot tell (a bare
    /// public key).
    std::optional<std::chrono::system_clock::time_point> expires;
};

/// What was decided about one record, local key file entry or key, for logs and tools.
struct candidate_report {
    std::string source;
    /// Passes every check: it gives a key (or, for a hash record, confirms a usable local one).
    bool usable = false;
    /// Its key is among the keys used (not a duplicate, not dropped by preference).
    bool selected = false;
    /// Its key is used, by this candidate or by another one with the same key.
    bool in_use = false;
    /// It came from the local key store.
    bool local = false;
    /// Every finding, "; "-separated: the first failed check, or why it is usable and what
    /// was accepted on the way ("expired 2025-01-01 (accepted: DANE-EE)").
    std::string why;
    /// The certificate's subject, or the OpenPGP key's primary user ID; empty when the data
    /// did not parse.
    std::string subject;
    /// The addresses it names: rfc822Name subjectAltNames, OpenPGP user IDs.
    std::vector<std::string> names;
    /// "RSA 2048", "EC P-256", "X25519", ...
    std::string key_description;
    std::optional<std::chrono::system_clock::time_point> not_before;
    std::optional<std::chrono::system_clock::time_point> not_after;
    /// Lowercase hex: the SHA-256 of the certificate's DER (of the SPKI for a bare key), the
    /// OpenPGP primary key's fingerprint.
    std::string fingerprint;
};

/// A format's verdict on one recipient's records and local keys.
struct evaluation {
    /// Usable keys, de-duplicated, after the format's preferences; in report order.
    std::vector<key> keys;
    /// One per record, then one per local key.
    std::vector<candidate_report> reports;
    /// Local store files skipped whole or in part (unreadable, no key, a private key).
    std::vector<candidate_report> local_problems;
    /// Records whose RDATA is too short to hold even the type's fixed fields; left out of
    /// `reports`.
    std::size_t unparsable = 0;
    /// The precedence rule applied, e.g. "no SMIMEA record (DNSSEC-secure absence): local
    /// certificate store".
    std::string decision;
    /// The first moment after the time of the evaluation at which the clock alone could change
    /// it: a certificate, key or signature it saw becomes valid or expires. nullopt: never.
    /// Evaluated keys are kept until then at most.
    std::optional<std::chrono::system_clock::time_point> changes_at;
    /// Part of the verdict rests on a failure that may pass (a library that could not be set
    /// up): it holds for this message only and is never kept. So does a verdict with
    /// local_problems, whatever their cause.
    bool provisional = false;
};

/// Moves `ev.changes_at` to `edge` when that is earlier and still after `now`. An edge is the
/// first second in the new state: a validity period's start, or the second after its end.
void note_change(evaluation& ev, std::chrono::system_clock::time_point edge,
                 std::chrono::system_clock::time_point now);

/// The keys one recipient's copy is sealed to: made by key discovery and carried unchanged to
/// sealing.
struct key_set {
    /// How the lookups ended; bogus and failure mean no copy (4xx), whatever the keys.
    dns::outcome outcome = dns::outcome::failure;
    /// The format of `keys`; null when there are none.
    std::shared_ptr<const seal::format> format;
    std::vector<key> keys;
    /// A format ahead of `format` in the policy's order found no key on a verdict that rests
    /// on a failure that may pass (evaluation::provisional): the key it missed may be the
    /// recipient's, so no copy (4xx) until that format can judge again.
    bool unsettled = false;
};

/// One recipient's sealed copy in one format, produced as the plaintext streams in. Output is
/// CRLF text, but for the lines of ciphertext format::seal() was told to end otherwise.
class encoder {
public:
    virtual ~encoder() = default;
    /// Appends the outer entity's MIME header fields (MIME-Version included), the empty line
    /// that ends the header section, and what precedes the ciphertext in the body.
    virtual void begin(std::string& out) = 0;
    /// Encrypts the next plaintext bytes; appends what output is ready.
    virtual std::optional<std::string> write(std::string_view plaintext, std::string& out) = 0;
    /// Ends the ciphertext and the body. The content must not have been empty.
    virtual std::optional<std::string> finish(std::string& out) = 0;
    /// The content cipher, as the Mailseal: field and the delivery log name it.
    virtual std::string_view cipher() const = 0;
};

/// What `mailseal record` prints for one key: comment lines and the record's RDATA.
struct published_record {
    /// Lines that describe the record and the key, without the leading "; ".
    std::vector<std::string> comments;
    /// The RDATA in the type's presentation form ("3 0 0 3082...", base64).
    std::string presentation;
    std::vector<std::uint8_t> rdata;
};

/// S/MIME's TLSA-style record fields for `mailseal record`; formats without them refuse them.
struct record_parameters {
    std::optional<unsigned> usage;
    std::optional<unsigned> selector;
    std::optional<unsigned> matching_type;
};

/// Why `mailseal record` gets no records from a file.
struct record_refusal {
    /// The parameters do not apply (a usage error), rather than the file holding no key.
    bool bad_parameters = false;
    std::string why;
};

class format {
public:
    virtual ~format() = default;

    virtual config::seal_format id() const = 0;
    /// The DNS record type users publish their keys in, its mnemonic, and the label of its
    /// owner names (dns::hashed_owner_name()).
    virtual std::uint16_t rr_type() const = 0;
    virtual std::string_view rr_name() const = 0;
    virtual std::string_view owner_label() const = 0;
    /// Whether a file in a user's local key store directory holds this format's keys, by its
    /// name.
    virtual bool stores(const std::filesystem::path& file) const = 0;
    /// Whether a file given on the command line holds this format's keys, by its content.
    virtual bool recognises(const std::filesystem::path& file) const = 0;

    /// The keys for `address` (local-part@A-label-domain, as keys must name it) from a lookup
    /// that ended secure_records, secure_absent or insecure, and from `local_files`. Which
    /// source wins is the format's precedence rule. Blocking: the files are read here.
    virtual evaluation evaluate(const dns::lookup_result& lookup,
                                const std::vector<std::filesystem::path>& local_files,
                                std::string_view address,
                                std::chrono::system_clock::time_point now) const = 0;

    /// Under header protection (RFC 9788), a further Content-Type parameter for the inner
    /// entity, for readers that know only an older marker; empty for none.
    virtual std::string_view legacy_protected_headers_marker() const = 0;

    /// Starts one recipient's sealed copy to `keys` (made by this format, not empty) with the
    /// recipient's policy. The lines of ciphertext the format writes itself end in
    /// `line_end`, the one the copy is stored with (copy_sink::line_end()); everything else is
    /// CRLF text.
    virtual std::variant<std::unique_ptr<encoder>, std::string>
    seal(const std::vector<key>& keys, const config::seal_policy& policy,
         std::string_view line_end) const = 0;

    /// The records that publish the keys in `file` for `address`, or why there are none.
    virtual std::variant<std::vector<published_record>, record_refusal>
    records(const std::filesystem::path& file, std::string_view address,
            const record_parameters& parameters,
            std::chrono::system_clock::time_point now) const = 0;
};

/// "2025-01-01T00:00:00Z"
std::string iso_time(std::chrono::system_clock::time_point t);

/// `text` with `more` appended, "; "-separated.
void append_finding(std::string& text, std::string_view more);

/// The decision for a lookup of `rr_name` records that ended bogus or failed: no keys, and the
/// local store is not read, so whoever can break DNS answers cannot choose the key.
std::string refusal_decision(std::string_view rr_name, dns::outcome outcome);

} // namespace mailseal::seal
