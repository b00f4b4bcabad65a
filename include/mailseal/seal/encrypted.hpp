// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Whether a body that claims to be encrypted is encrypted, by its structure.
///
/// A label (a Content-Type) proves nothing: a message stored as received for a recipient with
/// a key must hold only ciphertext. Each check reads the whole body, streaming, in bounded
/// memory, and says yes only when every byte belongs to an encryption container:
/// - OpenPGP (RFC 4880 §11.3, RFC 9580 §10.3): one or more session key packets (PKESK,
///   SKESK), then exactly one encrypted data packet (SED, SEIPD v1/v2, or the AEAD packet of
///   GnuPG 2.3+) running to the end;
/// - CMS (RFC 5652 §6.1, RFC 5083 §2.1): a ContentInfo holding EnvelopedData or
///   AuthEnvelopedData with at least one RecipientInfo and its encrypted content, in BER
///   (definite or indefinite lengths), and nothing after it.
/// What is inside the encryption container cannot be checked without the key, but it must at
/// least look like ciphertext (randomness_probe): plaintext wrapped in a well-formed container
/// is refused too.
///
/// Failure policy: a check that says no gets the message sealed (a second layer, never a
/// loss), so every doubt is a no.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <mailseal/seal/message.hpp>

namespace mailseal::seal {

/// Base64 (RFC 2045 §6.8) decoded as it streams: white space and line ends are skipped, any
/// other character outside the alphabet, or data after the padding, is an error.
class base64_stream {
public:
    /// Appends the decoded bytes of `text` to `out`; false once the text is not base64.
    bool feed(std::string_view text, std::string& out);
    /// Decodes a final unpadded group; false when the text was not base64.
    bool finish(std::string& out);

private:
    std::uint32_t bits_ = 0;
    int held_ = 0;
    int padding_ = 0;
    bool failed_ = false;
};

/// Content-Transfer-Encoding undone as the body streams: identity, base64, or quoted-printable
/// (strictly: "=" followed by anything but two hex digits or a line end is an error).
class transfer_decoder {
public:
    explicit transfer_decoder(transfer_encoding encoding);
    /// Appends the decoded bytes of `text` to `out`; false once `text` is not valid.
    bool feed(std::string_view text, std::string& out);
    bool finish(std::string& out);

private:
    transfer_encoding encoding_;
    base64_stream base64_;
    /// A quoted-printable "=" and what followed it so far.
    std::string escape_;
    bool failed_ = false;
};

/// Whether bytes look like ciphertext: a chi-square test of their byte histogram against the
/// uniform distribution, over the first 4 KiB. Ciphertext and the random numbers of session
/// key packets pass (a false alarm is rarer than one in 10^15); text, or bytes decoded from
/// text, fails by far. Fewer than 256 bytes are too few to tell, and pass.
class randomness_probe {
public:
    void feed(std::string_view bytes);
    bool looks_random() const;
    void reset();

private:
    std::array<std::uint32_t, 256> counts_{};
    std::size_t sampled_ = 0;
};

/// An OpenPGP message (binary packets) that is encrypted and nothing else.
class openpgp_packet_check {
public:
    void feed(std::string_view bytes);
    /// False as soon as the bytes cannot be such a message any more.
    bool still_possible() const { return state_ != state::rejected; }
    /// The verdict once every byte was fed.
    bool finish();

private:
    enum class state { header, length, body, rejected };
    enum class phase { session_keys, data, done };
    void start_packet(unsigned char first);
    void begin_body(std::uint64_t length, bool partial);
    void packet_ended();
    void reject() { state_ = state::rejected; }

    state state_ = state::header;
    phase phase_ = phase::session_keys;
    int tag_ = 0;
    bool new_format_ = false;
    /// The length octets still to read, and what they add up to so far.
    int length_octets_ = 0;
    std::uint64_t length_value_ = 0;
    unsigned char first_length_octet_ = 0;
    bool reading_first_length_octet_ = false;
    std::uint64_t body_left_ = 0;
    /// How far into the packet's body, and how long the body is (session key packets).
    std::uint64_t body_offset_ = 0;
    std::uint64_t body_length_ = 0;
    bool body_runs_to_end_ = false;
    bool partial_ = false;
    bool first_body_byte_ = false;
    std::size_t session_keys_ = 0;
    /// The encrypted data, and the current session key packet's random number.
    randomness_probe payload_;
    randomness_probe session_key_;
};

/// A CMS ContentInfo (BER) that is EnvelopedData or AuthEnvelopedData and nothing else.
class cms_envelope_check {
public:
    cms_envelope_check();
    void feed(std::string_view bytes);
    bool still_possible() const { return !rejected_; }
    bool finish();

private:
    /// What an element is in the expected structure; opaque elements are only checked for
    /// well-formed BER. encrypted_content is the [0] string and the strings inside it.
    enum class role {
        content_info,
        explicit_content,
        envelope,
        recipient_infos,
        encrypted_content_info,
        encrypted_content,
        opaque,
    };
    struct frame {
        role what;
        bool indefinite;
        std::uint64_t end; ///< offset just after the element, when definite
        std::size_t children = 0;
        /// The envelope's fields so far, in RFC 5652/5083 order.
        int stage = 0;
        std::uint64_t content_bytes = 0;
    };
    void header_byte(unsigned char c);
    void element_header_done();
    bool child_role(const frame& parent, role& out);
    void close_frames();
    void close(const frame& f);
    void reject() { rejected_ = true; }

    bool rejected_ = false;
    bool complete_ = false;
    bool auth_ = false;
    std::uint64_t offset_ = 0;
    std::vector<frame> stack_;
    /// The element header being read: identifier and length octets.
    enum class header_part { identifier, tag_number, length_first, length_more } part_;
    unsigned char identifier_ = 0;
    std::uint64_t tag_number_ = 0;
    int length_octets_ = 0;
    std::uint64_t length_ = 0;
    bool indefinite_ = false;
    /// The primitive element whose content is being read, and where it ends.
    bool in_primitive_ = false;
    std::uint64_t primitive_end_ = 0;
    /// The content type OID of the ContentInfo, read whole (it is short).
    bool capturing_oid_ = false;
    std::string oid_;
    /// The primitive being read is encrypted content.
    bool probing_ = false;
    randomness_probe payload_;
};

/// Fed the canonical body in pieces, tells whether the body is what the header section
/// claims (classification::body_check).
class body_scanner {
public:
    virtual ~body_scanner() = default;
    virtual void feed(std::string_view canonical_body) = 0;
    /// False as soon as the body cannot be encrypted content any more.
    virtual bool still_possible() const = 0;
    /// The verdict once the whole body was fed.
    virtual bool finish() = 0;
    /// Whether the message claims to be encrypted. A MIME label is a claim by itself; a text
    /// part claims it only with its first line, an armour's BEGIN line.
    virtual bool claims_encryption() const { return true; }
};

/// The scanner for `c.check` (null for body_check::none).
std::unique_ptr<body_scanner> make_body_scanner(const classification& c);

/// A scanner fed the body with its transfer encoding undone.
class decoded_scanner final : public body_scanner {
public:
    decoded_scanner(transfer_encoding encoding, std::unique_ptr<body_scanner> inner);
    ~decoded_scanner() override;
    void feed(std::string_view canonical_body) override;
    bool still_possible() const override { return !failed_ && inner_->still_possible(); }
    bool finish() override;
    bool claims_encryption() const override { return inner_->claims_encryption(); }

private:
    transfer_decoder decoder_;
    std::unique_ptr<body_scanner> inner_;
    std::string decoded_;
    bool failed_ = false;
};

/// A text body that is one ASCII-armoured OpenPGP message (RFC 4880 §6.2) from its first
/// non-blank line to its end, holding an encrypted message (openpgp_packet_check): the BEGIN
/// PGP MESSAGE line, armour headers (Version, Comment, MessageID, Hash, Charset), an empty
/// line, radix-64 lines of at most 76 characters (each but the last a multiple of 4), an
/// optional checksum, the END line, then only blank lines. A quoted armour block inside other
/// text, text after the END line, or a line inside that is not radix-64 is not.
class armour_scanner final : public body_scanner {
public:
    void feed(std::string_view canonical_body) override;
    bool still_possible() const override { return state_ != state::rejected; }
    bool finish() override;
    bool claims_encryption() const override { return began_; }

private:
    enum class state { leading, headers, data, trailing, rejected };
    void line(std::string_view text);

    state state_ = state::leading;
    /// The first line was the BEGIN line.
    bool began_ = false;
    std::string partial_;
    std::size_t header_lines_ = 0;
    std::size_t data_lines_ = 0;
    bool short_line_seen_ = false;
    bool checksum_seen_ = false;
    base64_stream radix64_;
    std::string decoded_;
    openpgp_packet_check packets_;
};

/// A base64 body holding one CMS envelope (cms_envelope_check).
class cms_scanner final : public body_scanner {
public:
    void feed(std::string_view canonical_body) override;
    bool still_possible() const override { return !failed_ && check_.still_possible(); }
    bool finish() override;

private:
    base64_stream base64_;
    std::string decoded_;
    cms_envelope_check check_;
    bool failed_ = false;
};

/// A multipart/encrypted body as RFC 3156 §4 has it: a preamble that is blank or a client's
/// boilerplate line, part 1 `application/pgp-encrypted` whose body is "Version: 1", part 2
/// `application/octet-stream` holding one encrypted OpenPGP message (armoured, or binary
/// under base64), the close delimiter, and a blank epilogue. No third part.
class pgp_mime_scanner final : public body_scanner {
public:
    explicit pgp_mime_scanner(std::string boundary);
    ~pgp_mime_scanner() override;
    void feed(std::string_view canonical_body) override;
    bool still_possible() const override { return state_ != state::rejected; }
    bool finish() override;

private:
    enum class state {
        preamble,
        control_headers,
        control_body,
        data_headers,
        data_body,
        epilogue,
        rejected,
    };
    enum class delimiter { none, part, close, malformed };
    void line(std::string_view text, std::string_view with_end);
    delimiter delimiter_kind(std::string_view text) const;
    void headers_ended();
    bool control_part_ok();
    /// Part 2's decoded content: armour, or binary packets (the first octet tells).
    bool data(std::string_view decoded);
    bool data_finished();

    std::string boundary_;
    state state_ = state::preamble;
    std::string partial_;
    std::string part_headers_;
    /// The current part's transfer decoding.
    std::unique_ptr<transfer_decoder> decoder_;
    /// Part 1's body, decoded ("Version: 1"), and part 2's, as it is decoded.
    std::string decoded_;
    std::unique_ptr<armour_scanner> armour_;
    std::unique_ptr<openpgp_packet_check> packets_;
};

} // namespace mailseal::seal
