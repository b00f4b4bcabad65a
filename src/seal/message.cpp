// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <memory>
#include <optional>

#include <gmime/gmime.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <mailseal/seal/message.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/wipe.hpp>

namespace mailseal::seal {
namespace {

/// The length of the field name if `line` starts a header field (RFC 5322 §3.6.8: 1*ftext
/// ":"), else 0. Obsolete syntax allows white space before the colon (§4.5.3), and 8-bit
/// octets in a name are taken as gmime and Postfix take them, so a stray one does not end the
/// header section early.
std::size_t field_name_length(std::string_view line) {
    std::size_t i = 0;
    while (i < line.size()) {
        auto c = static_cast<unsigned char>(line[i]);
        if (c == ':' || c <= 32 || c == 127) {
            break;
        }
        ++i;
    }
    std::size_t name_end = i;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) {
        ++i;
    }
    return name_end > 0 && i < line.size() && line[i] == ':' ? name_end : 0;
}

struct gobject_deleter {
    void operator()(void* p) const noexcept { g_object_unref(p); }
};

/// Whether every LF in `in` follows a CR, the one before `in` being a CR when
/// `starts_after_cr`.
bool every_lf_after_cr(std::string_view in, bool starts_after_cr) {
    if (in.empty()) {
        return true;
    }
    if (in[0] == '\n' && !starts_after_cr) {
        return false;
    }
    // From the second octet on, the one before is in `in`.
    std::size_t at = 1;
#if defined(__SSE2__)
    // 16 octets at a time, each compared with the octet before it: far faster than finding
    // the LFs one line at a time, and most of the body is checked this way.
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i cr = _mm_set1_epi8('\r');
    for (; at + 16 <= in.size(); at += 16) {
        const auto* p = in.data() + at;
        const __m128i here = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const __m128i before = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p - 1));
        const __m128i lone_lf =
            _mm_andnot_si128(_mm_cmpeq_epi8(before, cr), _mm_cmpeq_epi8(here, lf));
        if (_mm_movemask_epi8(lone_lf) != 0) {
            return false;
        }
    }
#endif
    for (; at < in.size(); ++at) {
        if (in[at] == '\n' && in[at - 1] != '\r') {
            return false;
        }
    }
    return true;
}

} // namespace

std::string_view canonicalizer::canonical(std::string_view in, std::string& scratch) {
    if (!every_lf_after_cr(in, last_was_cr_)) {
        feed(in, scratch);
        return scratch;
    }
    if (!in.empty()) {
        last_was_cr_ = in.back() == '\r';
    }
    return in;
}

void canonicalizer::feed(std::string_view in, std::string& out) {
    out.reserve(out.size() + in.size() + in.size() / 64);
    // Text that is canonical already (every LF after its CR) is copied in one go: only an LF
    // without its CR ends a run, and gets one inserted.
    std::size_t run = 0;
    for (auto lf = in.find('\n'); lf != std::string_view::npos; lf = in.find('\n', lf + 1)) {
        bool has_cr = lf > 0 ? in[lf - 1] == '\r' : last_was_cr_;
        if (!has_cr) {
            out.append(in.substr(run, lf - run));
            out += "\r\n";
            run = lf + 1;
        }
    }
    out.append(in.substr(run));
    if (!in.empty()) {
        last_was_cr_ = in.back() == '\r';
    }
}

std::string header_field::value() const {
    std::string_view raw_view(raw);
    auto colon = raw_view.find(':');
    std::string out;
    for (char c : raw_view.substr(colon + 1)) {
        if (c != '\r' && c != '\n') {
            out += c;
        }
    }
    return std::string(util::trim(out));
}

bool header_field::describes_content() const {
    return util::istarts_with(name, "content-") || util::iequals(name, "mime-version");
}

bool header_field::is(std::string_view field_name) const {
    return util::iequals(name, field_name);
}

const header_field* header_section::find(std::string_view name) const {
    for (const auto& f : fields) {
        if (f.is(name)) {
            return &f;
        }
    }
    return nullptr;
}

header_scanner::header_scanner(std::size_t max_header_bytes) : max_(max_header_bytes) {}

void header_scanner::feed(std::string_view in, std::string& body) {
    if (complete_) {
        body.append(in);
        return;
    }
    if (held_.capacity() < max_ + in.size()) {
        // Reserved once, so growing never leaves a copy of the section in freed memory.
        held_.reserve(max_ + in.size());
    }
    held_.append(in);
    // Each complete line either starts a field, continues one, is the empty separator, or ends
    // the header section as the body's first line.
    for (;;) {
        auto lf = held_.find('\n', scanned_);
        // A line that ends past the limit counts as one whose end has not arrived, so the
        // verdict below depends on the octets alone, not on how the chunks were cut.
        if (lf == std::string::npos || lf + 1 > max_) {
            break;
        }
        std::string_view line(held_.data() + scanned_, lf + 1 - scanned_);
        std::string_view text = line.substr(
            0, line.size() - (line.size() >= 2 && line[line.size() - 2] == '\r' ? 2 : 1));
        if (text.empty()) {
            section_.has_separator = true;
            end_section(lf + 1, body);
            return;
        }
        if ((text[0] == ' ' || text[0] == '\t') && !section_.fields.empty()) {
            section_.fields.back().raw.append(line);
        } else if (auto n = field_name_length(text); n > 0) {
            section_.fields.push_back(
                header_field{std::string(text.substr(0, n)), std::string(line)});
        } else {
            end_section(scanned_, body);
            return;
        }
        scanned_ = lf + 1;
    }
    if (held_.size() > max_) {
        // No end in sight: all of it is body, and nothing is taken from it as headers.
        section_.fields.clear();
        end_section(0, body);
    }
}

void header_scanner::finish(std::string& body) {
    if (complete_) {
        return;
    }
    // A last line without a line end is body: it might not be a whole field.
    end_section(scanned_, body);
}

void header_scanner::end_section(std::size_t body_start, std::string& body) {
    complete_ = true;
    body.append(held_, body_start, std::string::npos);
    util::wipe(held_);
    held_.shrink_to_fit();
}

std::string_view to_string(encrypted_form f) {
    switch (f) {
    case encrypted_form::none:
        return "none";
    case encrypted_form::pgp_mime:
        return "pgp-mime";
    case encrypted_form::smime_enveloped:
        return "smime-enveloped";
    case encrypted_form::smime_authenveloped:
        return "smime-authenveloped";
    case encrypted_form::pgp_inline:
        return "pgp-inline";
    }
    return "unknown";
}

std::optional<media_type> parse_media_type(const header_field& field) {
    bool seven_bit = std::all_of(field.raw.begin(), field.raw.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return (u >= 32 && u < 127) || c == '\t' || c == '\r' || c == '\n';
    });
    if (!seven_bit) {
        return std::nullopt;
    }
    auto value = field.value();
    std::unique_ptr<GMimeContentType, gobject_deleter> parsed(
        g_mime_content_type_parse(nullptr, value.c_str()));
    if (!parsed) {
        return std::nullopt;
    }
    media_type out;
    const char* media = g_mime_content_type_get_media_type(parsed.get());
    const char* sub = g_mime_content_type_get_media_subtype(parsed.get());
    out.type = util::ascii_lower(media ? media : "");
    out.subtype = util::ascii_lower(sub ? sub : "");
    // gmime 3.2 has no enum value for authEnveloped-data: read the parameter itself.
    if (const char* st = g_mime_content_type_get_parameter(parsed.get(), "smime-type")) {
        out.smime_type = util::ascii_lower(st);
    }
    if (const char* p = g_mime_content_type_get_parameter(parsed.get(), "protocol")) {
        out.protocol = util::ascii_lower(p);
    }
    if (const char* b = g_mime_content_type_get_parameter(parsed.get(), "boundary")) {
        out.boundary = b;
    }
    GMimeParamList* list = g_mime_content_type_get_parameters(parsed.get());
    std::size_t boundaries = 0;
    std::size_t protocols = 0;
    std::size_t smime_types = 0;
    for (int i = 0; list != nullptr && i < g_mime_param_list_length(list); ++i) {
        const char* name = g_mime_param_get_name(g_mime_param_list_get_parameter_at(list, i));
        std::string_view n = name != nullptr ? name : "";
        boundaries += util::iequals(n, "boundary") ? 1 : 0;
        protocols += util::iequals(n, "protocol") ? 1 : 0;
        smime_types += util::iequals(n, "smime-type") ? 1 : 0;
    }
    out.ambiguous = boundaries > 1 || protocols > 1 || smime_types > 1;
    return out;
}

bool valid_boundary(std::string_view boundary) {
    // bchars := bcharsnospace / " ", bcharsnospace := DIGIT / ALPHA / "'" / "(" / ")" / "+" /
    // "_" / "," / "-" / "." / "/" / ":" / "=" / "?"
    static constexpr std::string_view punctuation = "'()+_,-./:=? ";
    auto allowed = [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               punctuation.find(c) != std::string_view::npos;
    };
    return !boundary.empty() && boundary.size() <= 70 && boundary.back() != ' ' &&
           std::all_of(boundary.begin(), boundary.end(), allowed);
}

transfer_encoding transfer_encoding_of(const header_field* field) {
    if (field == nullptr) {
        return transfer_encoding::identity;
    }
    auto e = util::ascii_lower(field->value());
    if (e == "7bit" || e == "8bit" || e == "binary") {
        return transfer_encoding::identity;
    }
    if (e == "base64") {
        return transfer_encoding::base64;
    }
    return e == "quoted-printable" ? transfer_encoding::quoted_printable : transfer_encoding::other;
}

classification classify(const header_section& headers) {
    classification out;
    std::size_t types = 0;
    std::size_t encodings = 0;
    for (const auto& f : headers.fields) {
        types += f.is("Content-Type") ? 1 : 0;
        encodings += f.is("Content-Transfer-Encoding") ? 1 : 0;
    }
    if (types > 1 || encodings > 1 || !headers.has_separator) {
        return out;
    }
    const header_field* type_field = headers.find("Content-Type");
    // RFC 2045 §5.2: no Content-Type means text/plain; us-ascii. An unparsable one is
    // treated the same way by readers, so it gets the same (body) check.
    media_type media{"text", "plain", {}, {}, {}, false};
    if (type_field != nullptr) {
        if (auto parsed = parse_media_type(*type_field)) {
            media = std::move(*parsed);
        }
    }
    if (media.ambiguous) {
        return out;
    }
    auto encoding = transfer_encoding_of(headers.find("Content-Transfer-Encoding"));
    if (media.type == "multipart" && media.subtype == "encrypted") {
        // RFC 3156 §4: PGP/MIME names its protocol; other multipart/encrypted protocols are
        // not known to carry ciphertext. A multipart is never transfer-encoded (RFC 2045
        // §6.4).
        if (media.protocol == "application/pgp-encrypted" &&
            encoding == transfer_encoding::identity && valid_boundary(media.boundary)) {
            out.form = encrypted_form::pgp_mime;
            out.check = classification::body_check::pgp_mime;
            out.boundary = media.boundary;
        }
    } else if (media.type == "application" &&
               (media.subtype == "pkcs7-mime" || media.subtype == "x-pkcs7-mime")) {
        if (encoding == transfer_encoding::base64 && media.smime_type == "enveloped-data") {
            out.form = encrypted_form::smime_enveloped;
            out.check = classification::body_check::cms;
        } else if (encoding == transfer_encoding::base64 &&
                   media.smime_type == "authenveloped-data") {
            out.form = encrypted_form::smime_authenveloped;
            out.check = classification::body_check::cms;
        }
    } else if (media.type == "text" && encoding != transfer_encoding::other) {
        // Armour under an encoding is checked once decoded: K-9 Mail and webmails write
        // quoted-printable or base64 text parts.
        out.form = encrypted_form::pgp_inline;
        out.check = classification::body_check::armour;
        out.encoding = encoding;
    }
    return out;
}

gmime_library::gmime_library() {
    g_mime_init();
}

gmime_library::~gmime_library() {
    g_mime_shutdown();
}

} // namespace mailseal::seal
