// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <array>

#include <mailseal/seal/encrypted.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/wipe.hpp>

namespace mailseal::seal {
namespace {

// What each octet is in base64 text: a digit's value, white space, the padding, or neither.
constexpr unsigned char base64_space = 64;
constexpr unsigned char base64_pad = 65;
constexpr unsigned char base64_invalid = 255;
constexpr auto base64_table = [] {
    std::array<unsigned char, 256> t{};
    t.fill(base64_invalid);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (unsigned char i = 0; i < 64; ++i) {
        t[static_cast<unsigned char>(alphabet[i])] = i;
    }
    for (char c : {' ', '\t', '\r', '\n'}) {
        t[static_cast<unsigned char>(c)] = base64_space;
    }
    t['='] = base64_pad;
    return t;
}();

bool is_base64_digit(char c) {
    return base64_table[static_cast<unsigned char>(c)] < 64;
}

std::string_view trim_end(std::string_view s) {
    auto end = s.find_last_not_of(" \t");
    return end == std::string_view::npos ? std::string_view() : s.substr(0, end + 1);
}

bool is_blank(std::string_view line) {
    return trim_end(line).empty();
}

/// The longest line any of these bodies may have: armour lines are at most 76 characters,
/// base64 lines at most 76 (RFC 2045 §6.8), header lines at most 998 (RFC 5322 §2.1.1).
constexpr std::size_t max_line = 1000;

/// Cuts `in` into lines, `partial` holding an unfinished one between calls, and calls
/// `on_line(text, with_end)` for each (text without its CRLF or LF) until it returns false.
/// False once a line is longer than max_line: counted across pieces, so the verdict does not
/// depend on where the body was cut.
template <typename OnLine>
bool split_lines(std::string_view in, std::string& partial, OnLine on_line) {
    while (!in.empty()) {
        auto lf = in.find('\n');
        if (partial.size() + std::min(lf, in.size()) > max_line) {
            return false;
        }
        if (lf == std::string_view::npos) {
            partial.append(in);
            return true;
        }
        partial.append(in.substr(0, lf + 1));
        in.remove_prefix(lf + 1);
        std::string_view with_end(partial);
        std::string_view text = with_end.substr(0, with_end.size() - 1);
        if (!text.empty() && text.back() == '\r') {
            text.remove_suffix(1);
        }
        bool go_on = on_line(text, with_end);
        util::wipe(partial);
        if (!go_on) {
            break;
        }
    }
    return true;
}

/// A part's header section in a PGP/MIME body: clients write a few short fields.
constexpr std::size_t max_part_headers = 16 * 1024;
/// Part 1's body: "Version: 1", a few line ends, at most an encoding's worth more.
constexpr std::size_t max_control_body = 1024;
/// Armour headers: tools write none to a few (Version, Comment, Charset); their values are
/// stored in clear, so a message may not hide a document there.
constexpr std::size_t max_armour_header_lines = 16;
/// Session key packets: a PKESK for RSA-16384 is 2,060 octets; a message to 256 recipients
/// is far beyond any mailing a client encrypts. Both bound what a sender can place outside
/// the encrypted data.
constexpr std::uint64_t max_session_key_packet = 2560;
constexpr std::size_t max_session_key_packets = 256;
/// A session key packet's first octets (version, key ID, algorithms) are not random; what
/// follows in a long one is an encrypted session key, which is.
constexpr std::uint64_t session_key_header = 16;

// OpenPGP packet tags (RFC 9580 §5).
constexpr int tag_pkesk = 1;
constexpr int tag_skesk = 3;
constexpr int tag_sed = 9;
constexpr int tag_seipd = 18;
constexpr int tag_aead = 20; // GnuPG 2.3+'s OCB packet (LibrePGP)

bool is_data_packet(int tag) {
    return tag == tag_sed || tag == tag_seipd || tag == tag_aead;
}

/// The versions each packet may have; a packet of another version is no encryption this
/// check knows.
bool known_version(int tag, unsigned char version) {
    switch (tag) {
    case tag_pkesk:
        return version == 3 || version == 6;
    case tag_skesk:
        return version == 4 || version == 5 || version == 6;
    case tag_seipd:
        return version == 1 || version == 2;
    case tag_aead:
        return version == 1;
    default:
        return true;
    }
}

} // namespace

bool base64_stream::feed(std::string_view text, std::string& out) {
    if (failed_) {
        return false;
    }
    // Written through a pointer into room made once: this loop sees every octet of an S/MIME
    // body.
    auto start = out.size();
    out.resize(start + (text.size() + 3) / 4 * 3 + 3);
    char* w = out.data() + start;
    for (char c : text) {
        auto v = base64_table[static_cast<unsigned char>(c)];
        if (v < 64 && padding_ == 0) {
            bits_ = (bits_ << 6) | v;
            if (++held_ == 4) {
                *w++ = static_cast<char>(bits_ >> 16);
                *w++ = static_cast<char>(bits_ >> 8);
                *w++ = static_cast<char>(bits_);
                held_ = 0;
                bits_ = 0;
            }
        } else if (v == base64_space) {
            continue;
        } else if (v == base64_pad && held_ >= 2 && held_ + padding_ < 4) {
            // Padding completes a group of two or three characters, and ends the data.
            if (held_ + ++padding_ == 4) {
                *w++ = static_cast<char>(held_ == 2 ? bits_ >> 4 : bits_ >> 10);
                if (held_ == 3) {
                    *w++ = static_cast<char>(bits_ >> 2);
                }
            }
        } else {
            failed_ = true;
            break;
        }
    }
    out.resize(static_cast<std::size_t>(w - out.data()));
    return !failed_;
}

bool base64_stream::finish(std::string& out) {
    if (failed_ || (padding_ > 0 && held_ + padding_ != 4) || held_ == 1) {
        failed_ = true;
        return false;
    }
    if (padding_ == 0 && held_ == 2) {
        out += static_cast<char>(bits_ >> 4);
    } else if (padding_ == 0 && held_ == 3) {
        out += static_cast<char>(bits_ >> 10);
        out += static_cast<char>(bits_ >> 2);
    }
    held_ = 0;
    return true;
}

namespace {

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

int hex_value(char c) {
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

} // namespace

transfer_decoder::transfer_decoder(transfer_encoding encoding) : encoding_(encoding) {}

bool transfer_decoder::feed(std::string_view text, std::string& out) {
    switch (encoding_) {
    case transfer_encoding::identity:
        out.append(text);
        return true;
    case transfer_encoding::base64:
        return base64_.feed(text, out);
    case transfer_encoding::other:
        return false;
    case transfer_encoding::quoted_printable:
        break;
    }
    // RFC 2045 §6.7: "=XX" is an octet, "=" at a line's end a soft line break.
    for (char c : text) {
        if (failed_) {
            return false;
        }
        if (escape_.empty()) {
            if (c == '=') {
                escape_ = "=";
            } else {
                out += c;
            }
            continue;
        }
        escape_ += c;
        if (escape_ == "=\r") {
            continue;
        }
        if (escape_ == "=\r\n") {
            escape_.clear();
        } else if (escape_.size() == 2 && !is_hex(c)) {
            failed_ = true;
        } else if (escape_.size() == 3) {
            if (!is_hex(c) || escape_[1] == '\r') {
                failed_ = true;
            } else {
                out += static_cast<char>(hex_value(escape_[1]) * 16 + hex_value(c));
                escape_.clear();
            }
        }
    }
    return !failed_;
}

bool transfer_decoder::finish(std::string& out) {
    if (encoding_ == transfer_encoding::base64) {
        return base64_.finish(out);
    }
    return !failed_ && escape_.empty() && encoding_ != transfer_encoding::other;
}

void randomness_probe::feed(std::string_view bytes) {
    constexpr std::size_t sample = 4096;
    auto n = std::min(bytes.size(), sample - sampled_);
    for (std::size_t i = 0; i < n; ++i) {
        ++counts_[static_cast<unsigned char>(bytes[i])];
    }
    sampled_ += n;
}

bool randomness_probe::looks_random() const {
    if (sampled_ < 256) {
        return true;
    }
    // Pearson's chi-square with 255 degrees of freedom: mean 255, standard deviation about
    // 22.6. The limit is 16 deviations above the mean.
    double expected = static_cast<double>(sampled_) / 256.0;
    double chi_square = 0;
    for (auto c : counts_) {
        double d = static_cast<double>(c) - expected;
        chi_square += d * d / expected;
    }
    return chi_square <= 255.0 + 16.0 * 22.6;
}

void randomness_probe::reset() {
    counts_.fill(0);
    sampled_ = 0;
}

void openpgp_packet_check::feed(std::string_view bytes) {
    std::size_t i = 0;
    while (i < bytes.size() && state_ != state::rejected) {
        auto c = static_cast<unsigned char>(bytes[i]);
        switch (state_) {
        case state::header:
            ++i;
            start_packet(c);
            break;
        case state::length:
            ++i;
            if (reading_first_length_octet_) {
                reading_first_length_octet_ = false;
                // RFC 9580 §4.2.1: one octet, two octets, four after 0xff, or a partial
                // body length (a power of two, more chunks follow).
                if (c < 192) {
                    begin_body(c, false);
                } else if (c < 224) {
                    first_length_octet_ = c;
                    length_octets_ = 1;
                    length_value_ = 0;
                } else if (c < 255) {
                    begin_body(std::uint64_t{1} << (c & 0x1f), true);
                } else {
                    length_octets_ = 4;
                    length_value_ = 0;
                    first_length_octet_ = 0;
                }
                break;
            }
            length_value_ = (length_value_ << 8) | c;
            if (--length_octets_ == 0) {
                if (first_length_octet_ != 0) {
                    begin_body(((first_length_octet_ - 192u) << 8) + length_value_ + 192, false);
                } else {
                    begin_body(length_value_, false);
                }
            }
            break;
        case state::body: {
            if (first_body_byte_) {
                first_body_byte_ = false;
                if (!known_version(tag_, c)) {
                    reject();
                    break;
                }
            }
            auto take = body_runs_to_end_ ? bytes.size() - i
                                          : static_cast<std::size_t>(std::min<std::uint64_t>(
                                                body_left_, bytes.size() - i));
            auto piece = bytes.substr(i, take);
            // The probes skip what is not random: a version octet, a session key packet's
            // header.
            std::uint64_t skip =
                is_data_packet(tag_) ? (tag_ == tag_sed ? 0 : 1) : session_key_header;
            if (body_offset_ + take > skip) {
                auto from = body_offset_ < skip ? skip - body_offset_ : 0;
                (is_data_packet(tag_) ? payload_ : session_key_).feed(piece.substr(from));
            }
            body_offset_ += take;
            i += take;
            if (body_runs_to_end_) {
                break;
            }
            body_left_ -= take;
            if (body_left_ == 0) {
                if (partial_) {
                    state_ = state::length;
                    reading_first_length_octet_ = true;
                } else {
                    packet_ended();
                }
            }
            break;
        }
        case state::rejected:
            break;
        }
    }
}

void openpgp_packet_check::start_packet(unsigned char first) {
    // Bit 7 is always set (RFC 9580 §4.2); bit 6 selects the new packet format.
    if ((first & 0x80) == 0 || phase_ != phase::session_keys) {
        // Not a packet, or a packet after the encrypted data: something readable may follow.
        reject();
        return;
    }
    new_format_ = (first & 0x40) != 0;
    tag_ = new_format_ ? (first & 0x3f) : ((first >> 2) & 0x0f);
    if (tag_ == tag_pkesk || tag_ == tag_skesk) {
        if (++session_keys_ > max_session_key_packets) {
            reject();
            return;
        }
    } else if (is_data_packet(tag_) && session_keys_ > 0) {
        phase_ = phase::data;
    } else {
        // Literal, compressed, signature or any other packet first: readable by anyone.
        reject();
        return;
    }
    first_body_byte_ = true;
    body_offset_ = 0;
    session_key_.reset();
    partial_ = false;
    first_length_octet_ = 0;
    length_value_ = 0;
    state_ = state::length;
    if (new_format_) {
        reading_first_length_octet_ = true;
        return;
    }
    reading_first_length_octet_ = false;
    switch (first & 0x03) {
    case 0:
        length_octets_ = 1;
        break;
    case 1:
        length_octets_ = 2;
        break;
    case 2:
        length_octets_ = 4;
        break;
    default:
        // The old format's indeterminate length: the packet runs to the end of the data,
        // which only an encrypted data packet may.
        if (phase_ != phase::data) {
            reject();
            return;
        }
        body_runs_to_end_ = true;
        state_ = state::body;
        break;
    }
}

void openpgp_packet_check::begin_body(std::uint64_t length, bool partial) {
    bool continuation = !first_body_byte_;
    if (partial && phase_ != phase::data) {
        // Partial lengths are only for data packets (RFC 9580 §4.2.1.4).
        reject();
        return;
    }
    if (!continuation && phase_ == phase::session_keys && length > max_session_key_packet) {
        reject();
        return;
    }
    partial_ = partial;
    body_left_ = length;
    if (!continuation) {
        body_length_ = length;
    }
    state_ = state::body;
    if (length == 0) {
        if (!continuation) {
            // No session key or encrypted data packet is empty.
            reject();
            return;
        }
        packet_ended();
    }
}

void openpgp_packet_check::packet_ended() {
    state_ = state::header;
    if (is_data_packet(tag_)) {
        phase_ = phase::done;
    } else if (body_length_ >= session_key_header + 256 && !session_key_.looks_random()) {
        // A long session key packet is an encrypted session key: text there is no key.
        reject();
    }
}

bool openpgp_packet_check::finish() {
    if (state_ == state::rejected) {
        return false;
    }
    bool whole = phase_ == phase::done && state_ == state::header;
    bool open_ended = phase_ == phase::data && body_runs_to_end_ && !first_body_byte_;
    return (whole || open_ended) && payload_.looks_random();
}

namespace {

// ASN.1 identifier octets (X.690 §8.1.2).
constexpr unsigned char class_mask = 0xc0;
constexpr unsigned char universal = 0x00;
constexpr unsigned char context = 0x80;
constexpr unsigned char constructed_bit = 0x20;
constexpr std::uint64_t tag_integer = 2;
constexpr std::uint64_t tag_octet_string = 4;
constexpr std::uint64_t tag_oid = 6;
constexpr std::uint64_t tag_sequence = 16;
constexpr std::uint64_t tag_set = 17;

/// Nesting deeper than any real envelope (certificates in originatorInfo included).
constexpr std::size_t max_depth = 64;
/// Lengths beyond this are no mail: they would overflow offsets long before.
constexpr std::uint64_t max_length = std::uint64_t{1} << 48;

// id-envelopedData 1.2.840.113549.1.7.3 and id-ct-authEnvelopedData 1.2.840.113549.1.9.16.1.23.
constexpr std::string_view oid_enveloped("\x2a\x86\x48\x86\xf7\x0d\x01\x07\x03", 9);
constexpr std::string_view oid_auth_enveloped("\x2a\x86\x48\x86\xf7\x0d\x01\x09\x10\x01\x17", 11);

} // namespace

cms_envelope_check::cms_envelope_check() : part_(header_part::identifier) {}

void cms_envelope_check::feed(std::string_view bytes) {
    std::size_t i = 0;
    while (i < bytes.size() && !rejected_) {
        if (complete_) {
            // Bytes after the ContentInfo: readable data riding along.
            reject();
            return;
        }
        if (in_primitive_) {
            auto take = std::min<std::uint64_t>(primitive_end_ - offset_, bytes.size() - i);
            if (capturing_oid_) {
                oid_.append(bytes.substr(i, take));
            }
            if (probing_) {
                payload_.feed(bytes.substr(i, take));
            }
            i += take;
            offset_ += take;
            if (offset_ == primitive_end_) {
                in_primitive_ = false;
                if (capturing_oid_) {
                    capturing_oid_ = false;
                    if (oid_ == oid_auth_enveloped) {
                        auth_ = true;
                    } else if (oid_ != oid_enveloped) {
                        reject();
                        return;
                    }
                }
                close_frames();
            }
            continue;
        }
        auto c = static_cast<unsigned char>(bytes[i++]);
        ++offset_;
        header_byte(c);
    }
}

void cms_envelope_check::header_byte(unsigned char c) {
    if (!stack_.empty() && !stack_.back().indefinite && offset_ > stack_.back().end) {
        reject();
        return;
    }
    switch (part_) {
    case header_part::identifier:
        identifier_ = c;
        tag_number_ = c & 0x1f;
        part_ = tag_number_ == 0x1f ? header_part::tag_number : header_part::length_first;
        if (tag_number_ == 0x1f) {
            tag_number_ = 0;
        }
        return;
    case header_part::tag_number:
        tag_number_ = (tag_number_ << 7) | (c & 0x7f);
        if (tag_number_ > (std::uint64_t{1} << 28)) {
            reject();
        } else if ((c & 0x80) == 0) {
            part_ = header_part::length_first;
        }
        return;
    case header_part::length_first:
        indefinite_ = c == 0x80;
        length_ = 0;
        if (c < 0x80 || c == 0x80) {
            length_ = c == 0x80 ? 0 : c;
            element_header_done();
        } else if (c == 0xff || (c & 0x7f) > 8) {
            reject();
        } else {
            length_octets_ = c & 0x7f;
            part_ = header_part::length_more;
        }
        return;
    case header_part::length_more:
        length_ = (length_ << 8) | c;
        if (length_ > max_length) {
            reject();
        } else if (--length_octets_ == 0) {
            element_header_done();
        }
        return;
    }
}

void cms_envelope_check::element_header_done() {
    part_ = header_part::identifier;
    bool constructed = (identifier_ & constructed_bit) != 0;
    if (identifier_ == 0 && tag_number_ == 0) {
        // End-of-contents: closes the innermost indefinite-length element.
        if (indefinite_ || length_ != 0 || stack_.empty() || !stack_.back().indefinite) {
            reject();
            return;
        }
        frame f = stack_.back();
        stack_.pop_back();
        close(f);
        close_frames();
        return;
    }
    if (indefinite_ && !constructed) {
        reject();
        return;
    }
    if (!stack_.empty() && !stack_.back().indefinite &&
        (indefinite_ || offset_ + length_ > stack_.back().end)) {
        // A child overrunning its parent, or open-ended inside a sized parent.
        reject();
        return;
    }
    role r = role::opaque;
    if (!child_role(stack_.empty() ? frame{role::opaque, true, 0} : stack_.back(), r)) {
        reject();
        return;
    }
    if (!stack_.empty()) {
        ++stack_.back().children;
    }
    if (constructed) {
        if (stack_.size() >= max_depth) {
            reject();
            return;
        }
        stack_.push_back(frame{r, indefinite_, offset_ + length_});
        close_frames();
        return;
    }
    if (r == role::encrypted_content) {
        // Encrypted content as one primitive string: count it in the element holding it.
        stack_.back().content_bytes += length_;
    }
    probing_ = r == role::encrypted_content;
    capturing_oid_ = stack_.size() == 1 && stack_.back().what == role::content_info &&
                     stack_.back().children == 1;
    if (capturing_oid_ && length_ > 16) {
        reject();
        return;
    }
    oid_.clear();
    in_primitive_ = true;
    primitive_end_ = offset_ + length_;
    if (length_ == 0) {
        in_primitive_ = false;
        if (capturing_oid_) {
            reject();
            return;
        }
        close_frames();
    }
}

bool cms_envelope_check::child_role(const frame& parent, role& out) {
    bool constructed = (identifier_ & constructed_bit) != 0;
    auto cls = static_cast<unsigned char>(identifier_ & class_mask);
    auto is = [&](unsigned char c, std::uint64_t number, bool cons) {
        return cls == c && tag_number_ == number && constructed == cons;
    };
    if (stack_.empty()) {
        // ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content } (RFC 5652 §3).
        out = role::content_info;
        return is(universal, tag_sequence, true);
    }
    auto index = parent.children;
    switch (parent.what) {
    case role::content_info:
        out = index == 0 ? role::opaque : role::explicit_content;
        return (index == 0 && is(universal, tag_oid, false)) ||
               (index == 1 && is(context, 0, true));
    case role::explicit_content:
        out = role::envelope;
        return index == 0 && is(universal, tag_sequence, true);
    case role::envelope: {
        // EnvelopedData (RFC 5652 §6.1): version, originatorInfo [0] OPTIONAL, recipientInfos,
        // encryptedContentInfo, unprotectedAttrs [1] OPTIONAL. AuthEnvelopedData (RFC 5083
        // §2.1): the same four, then authAttrs [1] OPTIONAL, mac, unauthAttrs [2] OPTIONAL.
        auto& stage = stack_.back().stage;
        out = role::opaque;
        if (stage == 0 && is(universal, tag_integer, false) && length_ <= 2) {
            stage = 1;
        } else if (stage == 1 && is(context, 0, true)) {
            stage = 2;
        } else if ((stage == 1 || stage == 2) && is(universal, tag_set, true)) {
            stage = 3;
            out = role::recipient_infos;
        } else if (stage == 3 && is(universal, tag_sequence, true)) {
            stage = 4;
            out = role::encrypted_content_info;
        } else if (stage == 4 && is(context, 1, true)) {
            stage = auth_ ? 5 : 7;
        } else if (auth_ && (stage == 4 || stage == 5) && is(universal, tag_octet_string, false)) {
            stage = 6;
        } else if (auth_ && stage == 6 && is(context, 2, true)) {
            stage = 7;
        } else {
            return false;
        }
        return true;
    }
    case role::recipient_infos:
        // Each RecipientInfo choice (ktri, kari, kekri, pwri, ori) is constructed.
        out = role::opaque;
        return constructed;
    case role::encrypted_content_info:
        // EncryptedContentInfo: contentType, contentEncryptionAlgorithm, and the encrypted
        // content [0] IMPLICIT OCTET STRING, required here: without it there is no message.
        if (index == 2 && cls == context && tag_number_ == 0) {
            out = role::encrypted_content;
            return true;
        }
        out = role::opaque;
        return (index == 0 && is(universal, tag_oid, false)) ||
               (index == 1 && is(universal, tag_sequence, true));
    case role::encrypted_content:
        // A constructed string holds only strings of its kind (X.690 §8.7.3.2).
        out = role::encrypted_content;
        return cls == universal && tag_number_ == tag_octet_string;
    case role::opaque:
        out = role::opaque;
        return true;
    }
    return false;
}

void cms_envelope_check::close_frames() {
    while (!rejected_ && !stack_.empty() && !stack_.back().indefinite &&
           offset_ == stack_.back().end) {
        frame f = stack_.back();
        stack_.pop_back();
        close(f);
    }
}

void cms_envelope_check::close(const frame& f) {
    switch (f.what) {
    case role::content_info:
        complete_ = f.children == 2;
        if (!complete_) {
            reject();
        }
        return;
    case role::explicit_content:
        if (f.children != 1) {
            reject();
        }
        return;
    case role::envelope:
        if (f.stage < (auth_ ? 6 : 4)) {
            reject();
        }
        return;
    case role::recipient_infos:
        if (f.children == 0) {
            reject();
        }
        return;
    case role::encrypted_content_info:
        if (f.children != 3 || f.content_bytes == 0) {
            reject();
        }
        return;
    case role::encrypted_content:
        if (!stack_.empty()) {
            stack_.back().content_bytes += f.content_bytes;
        }
        return;
    case role::opaque:
        return;
    }
}

bool cms_envelope_check::finish() {
    return !rejected_ && complete_ && !in_primitive_ && part_ == header_part::identifier &&
           payload_.looks_random();
}

std::unique_ptr<body_scanner> make_body_scanner(const classification& c) {
    switch (c.check) {
    case classification::body_check::none:
        return nullptr;
    case classification::body_check::cms:
        return std::make_unique<cms_scanner>();
    case classification::body_check::armour:
        if (c.encoding != transfer_encoding::identity) {
            return std::make_unique<decoded_scanner>(c.encoding,
                                                     std::make_unique<armour_scanner>());
        }
        return std::make_unique<armour_scanner>();
    case classification::body_check::pgp_mime:
        return std::make_unique<pgp_mime_scanner>(c.boundary);
    }
    return nullptr;
}

decoded_scanner::decoded_scanner(transfer_encoding encoding, std::unique_ptr<body_scanner> inner)
    : decoder_(encoding), inner_(std::move(inner)) {}

decoded_scanner::~decoded_scanner() {
    util::wipe(decoded_);
}

void decoded_scanner::feed(std::string_view canonical_body) {
    if (failed_) {
        return;
    }
    failed_ = !decoder_.feed(canonical_body, decoded_);
    inner_->feed(decoded_);
    util::wipe(decoded_);
}

bool decoded_scanner::finish() {
    if (failed_ || !decoder_.finish(decoded_)) {
        return false;
    }
    inner_->feed(decoded_);
    util::wipe(decoded_);
    return inner_->finish();
}

void armour_scanner::feed(std::string_view canonical_body) {
    if (state_ != state::rejected &&
        !split_lines(canonical_body, partial_, [this](std::string_view text, std::string_view) {
            line(text);
            return state_ != state::rejected;
        })) {
        state_ = state::rejected;
    }
}

bool armour_scanner::finish() {
    if (!partial_.empty()) {
        line(partial_);
        util::wipe(partial_);
    }
    return state_ == state::trailing;
}

void armour_scanner::line(std::string_view text) {
    // Trailing white space is not part of armour (RFC 4880 §6.2 "should be ignored").
    std::string_view t = trim_end(text);
    switch (state_) {
    case state::leading:
        if (!t.empty()) {
            began_ = t == "-----BEGIN PGP MESSAGE-----";
            state_ = began_ ? state::headers : state::rejected;
        }
        return;
    case state::headers: {
        if (t.empty()) {
            state_ = state::data;
            return;
        }
        // RFC 4880 §6.2's armour header keys only: free text under another key is no armour.
        static constexpr std::array keys{
            "Version: ", "Comment: ", "MessageID: ", "Hash: ", "Charset: "};
        bool known = std::any_of(keys.begin(), keys.end(),
                                 [&](const char* k) { return util::istarts_with(t, k); });
        state_ =
            known && ++header_lines_ <= max_armour_header_lines ? state::headers : state::rejected;
        return;
    }
    case state::data:
        if (t == "-----END PGP MESSAGE-----") {
            bool ok = data_lines_ > 0 && radix64_.finish(decoded_);
            packets_.feed(decoded_);
            util::wipe(decoded_);
            state_ = ok && packets_.finish() ? state::trailing : state::rejected;
            return;
        }
        if (checksum_seen_ || t.empty() || t.size() > 76) {
            // Only the END line follows the checksum; lines are at most 76 characters
            // (RFC 4880 §6.3).
            state_ = state::rejected;
            return;
        }
        if (t.front() == '=' && t.size() == 5) {
            // The CRC-24 checksum: radix-64 too, but no part of the data.
            checksum_seen_ = std::all_of(t.begin() + 1, t.end(), is_base64_digit);
            state_ = checksum_seen_ ? state::data : state::rejected;
            return;
        }
        // Only the last data line may be short, and none holds white space (RFC 4880 §6.3):
        // words separated by spaces are text, whatever their letters.
        if (short_line_seen_ ||
            !std::all_of(t.begin(), t.end(),
                         [](char c) { return is_base64_digit(c) || c == '='; }) ||
            !radix64_.feed(t, decoded_)) {
            state_ = state::rejected;
            return;
        }
        short_line_seen_ = t.size() % 4 != 0 || t.back() == '=';
        ++data_lines_;
        packets_.feed(decoded_);
        util::wipe(decoded_);
        if (!packets_.still_possible()) {
            state_ = state::rejected;
        }
        return;
    case state::trailing:
        if (!t.empty()) {
            state_ = state::rejected;
        }
        return;
    case state::rejected:
        return;
    }
}

void cms_scanner::feed(std::string_view canonical_body) {
    if (failed_) {
        return;
    }
    if (!base64_.feed(canonical_body, decoded_)) {
        failed_ = true;
    }
    check_.feed(decoded_);
    util::wipe(decoded_);
}

bool cms_scanner::finish() {
    if (failed_ || !base64_.finish(decoded_)) {
        return false;
    }
    check_.feed(decoded_);
    util::wipe(decoded_);
    return check_.finish();
}

namespace {

/// Preamble lines real clients write before an encrypted multipart (Thunderbird, Enigmail,
/// GpgOL and Proton "RFC 4880 and 3156"; GPGTools and older plugins "RFC 2440 and 3156";
/// generic MIME writers). Any other text there would be stored in clear, so it is not taken.
bool is_boilerplate(std::string_view line) {
    static constexpr std::array known{
        "This is an OpenPGP/MIME encrypted message",
        "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)",
        "This is an OpenPGP/MIME encrypted message (RFC 2440 and 3156)",
        "This is an OpenPGP/MIME encrypted message (RFC 9580 and 3156)",
        "This is a multi-part message in MIME format",
        "This is a multipart message in MIME format",
    };
    std::string_view t = trim_end(line);
    if (!t.empty() && t.back() == '.') {
        t.remove_suffix(1);
    }
    return std::any_of(known.begin(), known.end(), [&](const char* k) { return t == k; });
}

} // namespace

pgp_mime_scanner::pgp_mime_scanner(std::string boundary) : boundary_(std::move(boundary)) {}

pgp_mime_scanner::~pgp_mime_scanner() {
    util::wipe(partial_);
    util::wipe(part_headers_);
    util::wipe(decoded_);
}

void pgp_mime_scanner::feed(std::string_view canonical_body) {
    if (state_ != state::rejected &&
        !split_lines(canonical_body, partial_,
                     [this](std::string_view text, std::string_view with_end) {
                         line(text, with_end);
                         return state_ != state::rejected;
                     })) {
        state_ = state::rejected;
    }
}

bool pgp_mime_scanner::finish() {
    if (!partial_.empty() && state_ != state::rejected) {
        line(partial_, partial_);
        util::wipe(partial_);
    }
    return state_ == state::epilogue;
}

pgp_mime_scanner::delimiter pgp_mime_scanner::delimiter_kind(std::string_view text) const {
    if (text.size() < boundary_.size() + 2 || text.substr(0, 2) != "--" ||
        text.substr(2, boundary_.size()) != boundary_) {
        return delimiter::none;
    }
    // Transport padding may follow (RFC 2046 §5.1.1); anything else makes a line that
    // readers split differently.
    std::string_view rest = trim_end(text.substr(boundary_.size() + 2));
    if (rest.empty()) {
        return delimiter::part;
    }
    return rest == "--" ? delimiter::close : delimiter::malformed;
}

void pgp_mime_scanner::line(std::string_view text, std::string_view with_end) {
    auto kind = delimiter_kind(text);
    switch (state_) {
    case state::preamble:
        if (kind == delimiter::part) {
            state_ = state::control_headers;
        } else if (kind != delimiter::none || !(is_blank(text) || is_boilerplate(text))) {
            state_ = state::rejected;
        }
        return;
    case state::control_headers:
    case state::data_headers:
        if (kind != delimiter::none) {
            state_ = state::rejected;
        } else if (text.empty()) {
            headers_ended();
        } else if (part_headers_.size() + with_end.size() > max_part_headers) {
            state_ = state::rejected;
        } else {
            part_headers_.append(with_end);
        }
        return;
    case state::control_body:
        if (kind == delimiter::part) {
            state_ = control_part_ok() ? state::data_headers : state::rejected;
        } else if (kind != delimiter::none || !decoder_->feed(with_end, decoded_) ||
                   decoded_.size() > max_control_body) {
            state_ = state::rejected;
        }
        return;
    case state::data_body: {
        if (kind == delimiter::close) {
            state_ = data_finished() ? state::epilogue : state::rejected;
            return;
        }
        if (kind != delimiter::none) {
            // A third part, or a line readers would split differently.
            state_ = state::rejected;
            return;
        }
        bool ok = decoder_->feed(with_end, decoded_) && data(decoded_);
        util::wipe(decoded_);
        if (!ok) {
            state_ = state::rejected;
        }
        return;
    }
    case state::epilogue:
        if (!is_blank(text)) {
            state_ = state::rejected;
        }
        return;
    case state::rejected:
        return;
    }
}

bool pgp_mime_scanner::control_part_ok() {
    if (!decoder_->finish(decoded_)) {
        return false;
    }
    // "Version: 1" once, and only line ends around it.
    bool version_seen = false;
    std::string_view rest(decoded_);
    while (!rest.empty()) {
        auto lf = rest.find('\n');
        auto line = rest.substr(0, lf);
        rest.remove_prefix(lf == std::string_view::npos ? rest.size() : lf + 1);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (trim_end(line) == "Version: 1" && !version_seen) {
            version_seen = true;
        } else if (!is_blank(line)) {
            return false;
        }
    }
    decoded_.clear();
    return version_seen;
}

bool pgp_mime_scanner::data(std::string_view decoded) {
    if (!armour_ && !packets_ && !decoded.empty()) {
        // Armour starts with a line (blank, or BEGIN); a binary message with a packet tag.
        auto first = decoded.front();
        if (first == '-' || first == '\r' || first == '\n' || first == ' ' || first == '\t') {
            armour_ = std::make_unique<armour_scanner>();
        } else {
            packets_ = std::make_unique<openpgp_packet_check>();
        }
    }
    if (armour_) {
        armour_->feed(decoded);
        return armour_->still_possible();
    }
    if (packets_) {
        packets_->feed(decoded);
        return packets_->still_possible();
    }
    return true;
}

bool pgp_mime_scanner::data_finished() {
    bool ok = decoder_->finish(decoded_) && data(decoded_);
    util::wipe(decoded_);
    if (!ok) {
        return false;
    }
    if (armour_) {
        return armour_->finish();
    }
    return packets_ && packets_->finish();
}

void pgp_mime_scanner::headers_ended() {
    header_scanner scanner(max_part_headers + 2);
    std::string body;
    part_headers_ += "\r\n";
    scanner.feed(part_headers_, body);
    util::wipe(part_headers_);
    const auto& section = scanner.section();
    std::size_t types = 0;
    std::size_t encodings = 0;
    for (const auto& f : section.fields) {
        types += f.is("Content-Type") ? 1 : 0;
        encodings += f.is("Content-Transfer-Encoding") ? 1 : 0;
    }
    auto type = section.find("Content-Type");
    auto media = type != nullptr ? parse_media_type(*type) : std::nullopt;
    auto encoding = transfer_encoding_of(section.find("Content-Transfer-Encoding"));
    // Any transfer encoding but an unknown one: K-9 Mail writes part 1 in quoted-printable,
    // emailjs (Mailvelope) writes both parts in base64.
    if (!scanner.complete() || !body.empty() || types != 1 || encodings > 1 || !media ||
        media->ambiguous || media->type != "application" || encoding == transfer_encoding::other) {
        state_ = state::rejected;
        return;
    }
    bool control = state_ == state::control_headers;
    if (media->subtype != (control ? "pgp-encrypted" : "octet-stream")) {
        state_ = state::rejected;
        return;
    }
    decoder_ = std::make_unique<transfer_decoder>(encoding);
    decoded_.clear();
    state_ = control ? state::control_body : state::data_body;
}

} // namespace mailseal::seal
