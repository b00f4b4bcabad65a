#include <algorithm>
#include <array>
#include <memory>
#include <optional>

#include <gmime/gmime.h>
#include <openssl/evp.h>

#include <mailseal/seal/message.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/wipe.hpp>

namespace mailseal::seal {
namespace {

bool is_blank(std::string_view line) {
    return line.find_first_not_of(" \t") == std::string_view::npos;
}

std::string_view trim(std::string_view s) {
    auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
        return {};
    }
    auto last = s.find_last_not_of(" \t\r\n");
    return s.substr(first, last - first + 1);
}

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

} // namespace

void canonicalizer::feed(std::string_view in, std::string& out) {
    out.reserve(out.size() + in.size() + in.size() / 64);
    // Copies runs up to each LF in one go; only an LF without its CR gets one inserted.
    while (!in.empty()) {
        auto lf = in.find('\n');
        if (lf == std::string_view::npos) {
            out.append(in);
            last_was_cr_ = in.back() == '\r';
            return;
        }
        bool has_cr = lf > 0 ? in[lf - 1] == '\r' : last_was_cr_;
        out.append(in.substr(0, lf));
        out += has_cr ? "\n" : "\r\n";
        in.remove_prefix(lf + 1);
        last_was_cr_ = false;
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
    return std::string(trim(out));
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
        if (lf == std::string::npos) {
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

classification classify(const header_section& headers) {
    classification out;
    std::size_t types = 0;
    std::size_t encodings = 0;
    for (const auto& f : headers.fields) {
        types += f.is("Content-Type") ? 1 : 0;
        encodings += f.is("Content-Transfer-Encoding") ? 1 : 0;
    }
    if (types > 1 || encodings > 1) {
        return out;
    }
    const header_field* type_field = headers.find("Content-Type");
    const header_field* encoding_field = headers.find("Content-Transfer-Encoding");
    // RFC 2045 §5.2: no Content-Type means text/plain; us-ascii. An unparsable one is
    // treated the same way by readers, so it gets the same (body) check.
    std::string type = "text";
    std::string subtype = "plain";
    std::string smime_type;
    std::string protocol;
    if (type_field != nullptr) {
        auto value = type_field->value();
        std::unique_ptr<GMimeContentType, gobject_deleter> parsed(
            g_mime_content_type_parse(nullptr, value.c_str()));
        if (parsed) {
            const char* media = g_mime_content_type_get_media_type(parsed.get());
            const char* sub = g_mime_content_type_get_media_subtype(parsed.get());
            type = util::ascii_lower(media ? media : "");
            subtype = util::ascii_lower(sub ? sub : "");
            // gmime 3.2 has no enum value for authEnveloped-data: read the parameter itself.
            if (const char* st = g_mime_content_type_get_parameter(parsed.get(), "smime-type")) {
                smime_type = util::ascii_lower(st);
            }
            if (const char* p = g_mime_content_type_get_parameter(parsed.get(), "protocol")) {
                protocol = util::ascii_lower(p);
            }
        }
    }
    std::string encoding =
        encoding_field ? util::ascii_lower(encoding_field->value()) : std::string("7bit");
    bool identity = encoding == "7bit" || encoding == "8bit" || encoding == "binary";
    if (type == "multipart" && subtype == "encrypted") {
        // RFC 3156 §4: PGP/MIME names its protocol; other multipart/encrypted protocols are
        // not known to carry ciphertext.
        if (protocol == "application/pgp-encrypted") {
            out.form = encrypted_form::pgp_mime;
        }
    } else if (type == "application" && (subtype == "pkcs7-mime" || subtype == "x-pkcs7-mime")) {
        if (encoding == "base64" && smime_type == "enveloped-data") {
            out = {encrypted_form::smime_enveloped, classification::body_check::cms};
        } else if (encoding == "base64" && smime_type == "authenveloped-data") {
            out = {encrypted_form::smime_authenveloped, classification::body_check::cms};
        }
    } else if (type == "text" && identity) {
        // An armour block survives only an identity encoding unchanged; a base64 or
        // quoted-printable text part is sealed (a second layer, never a lost message).
        out = {encrypted_form::pgp_inline, classification::body_check::armour};
    }
    return out;
}

void armour_scanner::feed(std::string_view canonical_body) {
    while (!canonical_body.empty() && state_ != state::rejected) {
        auto lf = canonical_body.find('\n');
        if (lf == std::string_view::npos) {
            partial_.append(canonical_body);
            // Armour lines are at most 76 characters (RFC 4880 §6.3); a long line is text.
            if (partial_.size() > 1000) {
                state_ = state::rejected;
            }
            return;
        }
        partial_.append(canonical_body.substr(0, lf));
        canonical_body.remove_prefix(lf + 1);
        if (!partial_.empty() && partial_.back() == '\r') {
            partial_.pop_back();
        }
        line(partial_);
        partial_.clear();
    }
}

bool armour_scanner::finish() {
    if (!partial_.empty()) {
        line(partial_);
        partial_.clear();
    }
    return state_ == state::trailing;
}

namespace {

bool is_radix64(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=';
}

/// Decodes whole base64 quads (RFC 4648 §4); nullopt on a character outside the alphabet.
std::optional<std::string> decode_base64(std::string_view text) {
    std::string out(text.size() / 4 * 3 + 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(text.data()),
                            static_cast<int>(text.size() / 4 * 4));
    if (n < 0) {
        return std::nullopt;
    }
    std::size_t padding = 0;
    for (std::size_t i = text.size() / 4 * 4; i > 0 && text[i - 1] == '=' && padding < 2; --i) {
        ++padding;
    }
    out.resize(static_cast<std::size_t>(n) - padding);
    return out;
}

/// RFC 4880 §4.2: the tag of the packet whose header starts `data` (old or new format).
int packet_tag(unsigned char first) {
    if ((first & 0x80) == 0) {
        return -1;
    }
    return (first & 0x40) != 0 ? (first & 0x3f) : ((first >> 2) & 0x0f);
}

} // namespace

void armour_scanner::line(std::string_view text) {
    // Trailing white space is not part of armour (RFC 4880 §6.2 "should be ignored").
    auto end = text.find_last_not_of(" \t");
    std::string_view t =
        end == std::string_view::npos ? std::string_view() : text.substr(0, end + 1);
    switch (state_) {
    case state::leading:
        if (t.empty()) {
            return;
        }
        state_ = t == "-----BEGIN PGP MESSAGE-----" ? state::headers : state::rejected;
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
        state_ = known ? state::headers : state::rejected;
        return;
    }
    case state::data:
        if (t == "-----END PGP MESSAGE-----") {
            state_ = data_lines_ > 0 ? state::trailing : state::rejected;
            return;
        }
        if (t.empty() || !std::all_of(t.begin(), t.end(), is_radix64)) {
            state_ = state::rejected;
            return;
        }
        if (t.front() == '=' && t.size() == 5) {
            return; // the CRC-24 checksum line
        }
        // RFC 4880 §6.3: lines of at most 76 characters; only the last may be short.
        if (t.size() > 76 || short_line_seen_) {
            state_ = state::rejected;
            return;
        }
        short_line_seen_ = t.size() % 4 != 0;
        if (data_lines_++ == 0) {
            auto decoded = decode_base64(t);
            int tag = decoded && !decoded->empty()
                          ? packet_tag(static_cast<unsigned char>(decoded->front()))
                          : -1;
            // An encrypted message starts with its session key packets (RFC 4880 §11.3).
            if (tag != 1 && tag != 3) {
                state_ = state::rejected;
            }
        }
        return;
    case state::trailing:
        if (!is_blank(t)) {
            state_ = state::rejected;
        }
        return;
    case state::rejected:
        return;
    }
}

void cms_scanner::feed(std::string_view canonical_body) {
    if (verdict_ != verdict::undecided) {
        return;
    }
    for (char c : canonical_body) {
        if (is_radix64(c)) {
            base64_ += c;
        } else if (c != '\r' && c != '\n' && c != ' ' && c != '\t') {
            verdict_ = verdict::no;
            return;
        }
    }
    if (base64_.size() >= 32) {
        judge();
    }
}

bool cms_scanner::finish() {
    if (verdict_ == verdict::undecided) {
        judge();
    }
    return verdict_ == verdict::yes;
}

void cms_scanner::judge() {
    // ContentInfo ::= SEQUENCE { contentType OBJECT IDENTIFIER, ... } (RFC 5652 §3).
    static constexpr unsigned char enveloped[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                                  0xf7, 0x0d, 0x01, 0x07, 0x03};
    static constexpr unsigned char auth_enveloped[] = {0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                                       0x0d, 0x01, 0x09, 0x10, 0x01, 0x17};
    auto decoded = decode_base64(std::string_view(base64_).substr(0, 32));
    verdict_ = verdict::no;
    if (!decoded || decoded->size() < 2 || static_cast<unsigned char>((*decoded)[0]) != 0x30) {
        return;
    }
    auto length = static_cast<unsigned char>((*decoded)[1]);
    // Short form, indefinite (BER), or long form with up to four length octets.
    std::size_t skip = length < 0x80 || length == 0x80 ? 2 : 2 + (length & 0x7f);
    if (length > 0x84) {
        return;
    }
    std::string_view rest = std::string_view(*decoded).substr(std::min(skip, decoded->size()));
    auto starts = [&](const auto& oid) {
        return rest.size() >= sizeof oid &&
               std::equal(
                   std::begin(oid), std::end(oid), rest.begin(),
                   [](unsigned char a, char b) { return a == static_cast<unsigned char>(b); });
    };
    if (starts(enveloped) || starts(auth_enveloped)) {
        verdict_ = verdict::yes;
    }
}

gmime_library::gmime_library() {
    g_mime_init();
}

gmime_library::~gmime_library() {
    g_mime_shutdown();
}

} // namespace mailseal::seal
