// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The message as sealing sees it: canonical (CRLF) bytes, a header section split into raw
/// fields, and whether the message is already encrypted.
///
/// Nothing here re-serializes a message. Fields keep their bytes exactly (folding, spacing,
/// case), because the inner entity of a sealed copy must be the original entity byte for byte
/// (RFC 8551 §3.1: a signature inside must still verify after decryption). gmime is used only
/// to interpret Content-Type values (RFC 2045/2231 parameters, quoting, comments), never to
/// write anything.
///
/// Failure policy: malformed input is never an error. A header section that is too large or
/// has no end is treated as having no fields (the whole message is body, sealed as opaque
/// content); a line that is neither a field nor a continuation ends the header section there.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailseal::seal {

/// Turns every LF not preceded by CR into CRLF (RFC 8551 §3.1.1 canonical form). Chunks may
/// split a CRLF anywhere.
class canonicalizer {
public:
    /// Appends the canonical form of `in` to `out`.
    void feed(std::string_view in, std::string& out);
    /// The canonical form of `in`: `in` itself when it is canonical already, as a message
    /// taken over LMTP is, with no copy; otherwise its canonical form, appended to `scratch`
    /// (empty before), which the view then shows.
    std::string_view canonical(std::string_view in, std::string& scratch);

private:
    bool last_was_cr_ = false;
};

/// One header field: its name and its raw text, continuation lines and final CRLF included.
struct header_field {
    std::string name;
    std::string raw;

    /// The unfolded value (after the colon, CRLFs of continuation lines removed, ends trimmed).
    std::string value() const;
    /// A field of the MIME entity rather than of the message: Content-* (RFC 2045 §9) and
    /// MIME-Version, which travel inside a sealed copy.
    bool describes_content() const;
    bool is(std::string_view field_name) const;
};

struct header_section {
    std::vector<header_field> fields;
    /// An empty line ended the section (it is not part of any field, nor of the body).
    bool has_separator = false;
    /// The first field named `name` (case-insensitively), or null.
    const header_field* find(std::string_view name) const;
};

/// Splits a canonical message into its header section and body, incrementally.
class header_scanner {
public:
    /// A header section whose lines (the empty line or the first line that is not a field
    /// included) do not all end within `max_header_bytes` octets makes the message all body,
    /// however its bytes were cut into chunks.
    explicit header_scanner(std::size_t max_header_bytes);

    /// Takes the next canonical bytes; bytes that belong to the body are appended to `body`
    /// (including those held while the header section was still open).
    void feed(std::string_view in, std::string& body);
    /// End of the message: a header section still open ends here.
    void finish(std::string& body);

    bool complete() const { return complete_; }
    const header_section& section() const { return section_; }

private:
    void end_section(std::size_t body_start, std::string& body);

    std::size_t max_;
    std::string held_;
    std::size_t scanned_ = 0;
    bool complete_ = false;
    header_section section_;
};

/// Already-encrypted forms, by MIME structure: stored as received.
enum class encrypted_form {
    none,
    pgp_mime,            ///< multipart/encrypted (RFC 3156, RFC 1847)
    smime_enveloped,     ///< application/(x-)pkcs7-mime; smime-type=enveloped-data
    smime_authenveloped, ///< ...; smime-type=authEnveloped-data (RFC 5083)
    pgp_inline,          ///< one text part that is wholly an ASCII-armoured PGP MESSAGE
};
std::string_view to_string(encrypted_form);

/// A Content-Transfer-Encoding (RFC 2045 §6): the identity ones (7bit, 8bit, binary, or no
/// field), base64, quoted-printable, or another (x-uuencode, a typo...).
enum class transfer_encoding { identity, base64, quoted_printable, other };
/// The encoding a Content-Transfer-Encoding field names (null: no field, identity).
transfer_encoding transfer_encoding_of(const header_field* field);

/// What the header section says about encryption.
struct classification {
    /// The form the header section claims (none: plaintext).
    encrypted_form form = encrypted_form::none;
    /// How the body must confirm the claim before the message counts as encrypted
    /// (seal/encrypted.hpp); a message whose body does not is sealed. A label alone is never
    /// trusted: a plaintext body under it would be stored in clear.
    enum class body_check { none, cms, armour, pgp_mime } check = body_check::none;
    /// The multipart boundary, for pgp_mime.
    std::string boundary;
    /// The body's transfer encoding, for armour (K-9 Mail writes quoted-printable text).
    transfer_encoding encoding = transfer_encoding::identity;
};

/// A Content-Type value as gmime parses it (RFC 2045 §5.1, RFC 2231 parameters, quoting and
/// comments): lowercase type and subtype, and the parameters sealing reads.
struct media_type {
    std::string type;
    std::string subtype;
    std::string smime_type; ///< lowercase
    std::string protocol;   ///< lowercase
    std::string boundary;   ///< as written
    /// One of those parameters is given twice: readers disagree on which counts.
    bool ambiguous = false;
};
/// Null when gmime cannot parse the value, or when the field has an octet that is not 7-bit
/// text (RFC 5322 §2.2): gmime drops such octets, other readers keep them, so they would
/// disagree on a boundary. Requires gmime_library to be alive.
std::optional<media_type> parse_media_type(const header_field& field);

/// Whether `boundary` is one RFC 2046 §5.1.1 allows (1 to 70 of its characters, not ending in
/// a space): gmime drops other octets, so readers would look for different delimiters.
bool valid_boundary(std::string_view boundary);

/// Classifies by the top-level Content-Type and Content-Transfer-Encoding, parsed with gmime.
/// Requires gmime_library to be alive. A header section with more than one Content-Type or
/// Content-Transfer-Encoding field, or without the empty line that ends it, is plaintext:
/// readers disagree on which field counts, or on where the body starts.
classification classify(const header_section& headers);

/// gmime's process-wide initialisation (g_mime_init / g_mime_shutdown): construct one in
/// main() before any thread starts, as gmime requires.
class gmime_library {
public:
    gmime_library();
    ~gmime_library();
    gmime_library(const gmime_library&) = delete;
    gmime_library& operator=(const gmime_library&) = delete;
};

} // namespace mailseal::seal
