// SPDX-License-Identifier: Apache-2.0
#pragma once

/// One recipient's CMS EnvelopedData (or AuthEnvelopedData for GCM), encrypted as the plaintext
/// streams in and emitted as base64 lines of 76 characters (RFC 2045 §6.8), ending in CRLF or,
/// for a copy stored with LF line ends, in LF, so that nobody converts them again.
///
/// The CMS is written in BER with indefinite lengths as data arrives, so memory does not grow
/// with the message; the plaintext is encrypted in chunks of 64 KiB. The staging buffer is
/// wiped when it is emptied and when the encoder is destroyed. The input is already canonical
/// and is encrypted as it stands.
///
/// Two ways of writing it. The default settings (AES-CBC EnvelopedData, RSA PKCS#1 v1.5 key
/// transport to every key) are encoded here around OpenSSL's RSA and AES, because OpenSSL's
/// CMS layer costs more CPU per copy than the RSA operation itself: the ciphertext goes out as
/// one OCTET STRING segment per write of up to 64 KiB and a last one for the padded block.
/// Every other combination goes through OpenSSL's CMS streaming (BIO_new_CMS, with CMS_BINARY
/// so that its text mode never rewrites line ends), whose segments are at most 4 KiB.
///
/// Key management per RFC 8551 §2.3: RSA key transport (PKCS#1 v1.5, or RSAES-OAEP with
/// SHA-256 and MGF1-SHA-256), EC P-256/P-384 ephemeral-static ECDH with a SHA-256 KDF and the
/// AES key wrap matching the content key. A key without a certificate (SMIMEA selector 1) is
/// named by subjectKeyIdentifier, computed as RFC 5280 §4.2.1.2 method 1.
///
/// Failure policy: every OpenSSL failure becomes an error text (OpenSSL's error queue
/// included); the caller answers 451 4.3.0 and stores nothing for that recipient.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <mailseal/seal/format.hpp>
#include <mailseal/seal/smime/options.hpp>

namespace mailseal::seal::smime {

/// The MIME subtype parameter for a cipher: "enveloped-data" or "authEnveloped-data".
std::string_view smime_type(content_cipher cipher);

class cms_encoder {
public:
    /// Prepares a CMS object with one RecipientInfo per key. `keys` must not be empty and must
    /// all be S/MIME keys. Each base64 line ends in `line_end`.
    static std::variant<cms_encoder, std::string>
    begin(const std::vector<key>& keys, const options& opts, std::string_view line_end = "\r\n");

    cms_encoder(cms_encoder&&) noexcept;
    cms_encoder& operator=(cms_encoder&&) noexcept;
    ~cms_encoder();

    /// Encrypts `plaintext`; complete base64 lines are appended to `out`.
    std::optional<std::string> write(std::string_view plaintext, std::string& out);
    /// Finalizes the CMS (the GCM tag included) and appends the remaining base64 lines. The
    /// content must not be empty (OpenSSL's streaming cannot encode it).
    std::optional<std::string> finish(std::string& out);

    struct state;

private:
    explicit cms_encoder(std::unique_ptr<state> s);
    std::unique_ptr<state> state_;
};

} // namespace mailseal::seal::smime
