// SPDX-License-Identifier: Apache-2.0
// Fuzzes the front of sealing (include/mailseal/seal/message.hpp): the canonicalizer, the
// header scanner and classify(), fed a message in pieces as the sealer feeds them, and again
// whole.
//
// Oracles: the canonical form is the input with a CR put before each LF that lacks one and
// nothing else changed (so it has no bare LF), whatever the pieces; the header scanner finds
// the same fields, separator and body whatever the pieces, and those fields' raw bytes, the
// separator and the body are the canonical message again, nothing lost or repeated; every
// field has a name and ends in CRLF; classify() names a body check only for the form it
// belongs to, and no form for a section readers could take differently.
//
// Input (split_input.hpp), option bits 0-1: the header section limit, the daemon's
// (seal::header_section_limit) or 4096, 256 or 64 octets.

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <mailseal/seal/message.hpp>
#include <mailseal/seal/sealer.hpp>

#include "oracle.hpp"
#include "split_input.hpp"

namespace mailseal::seal {
namespace {

using fuzz::require;

/// RFC 8551 §3.1.1 the plain way, one octet at a time.
std::string canonical_reference(std::string_view in) {
    std::string out;
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) {
            out += '\r';
        }
        out += in[i];
    }
    return out;
}

struct scanned {
    header_section section;
    std::string body;
};

scanned scan(const std::vector<std::string>& pieces, std::size_t limit) {
    header_scanner scanner(limit);
    scanned out;
    for (const auto& piece : pieces) {
        scanner.feed(piece, out.body);
    }
    scanner.finish(out.body);
    require(scanner.complete(), "the header section still open after finish()");
    out.section = scanner.section();
    return out;
}

bool same_fields(const header_section& a, const header_section& b) {
    if (a.has_separator != b.has_separator || a.fields.size() != b.fields.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.fields.size(); ++i) {
        if (a.fields[i].name != b.fields[i].name || a.fields[i].raw != b.fields[i].raw) {
            return false;
        }
    }
    return true;
}

void check_fields(const header_section& section) {
    for (const auto& f : section.fields) {
        require(!f.name.empty() && f.raw.starts_with(f.name), "a field without its name");
        for (char c : f.name) {
            const auto u = static_cast<unsigned char>(c);
            require(c != ':' && u > 32 && u != 127, "a field name with a colon, space or control");
        }
        require(f.raw.ends_with("\r\n"), "a field that does not end in CRLF");
        require(f.value().find_first_of("\r\n") == std::string::npos,
                "a field value with a line end in it");
    }
}

void check_classification(const header_section& section) {
    const classification c = classify(section);
    using check = classification::body_check;
    switch (c.form) {
    case encrypted_form::none:
        require(c.check == check::none, "a body check for plaintext");
        break;
    case encrypted_form::pgp_mime:
        require(c.check == check::pgp_mime && valid_boundary(c.boundary),
                "PGP/MIME without its check or with a boundary readers split differently");
        break;
    case encrypted_form::smime_enveloped:
    case encrypted_form::smime_authenveloped:
        require(c.check == check::cms, "an S/MIME form without the CMS check");
        break;
    case encrypted_form::pgp_inline:
        require(c.check == check::armour && c.encoding != transfer_encoding::other,
                "inline PGP without the armour check, or in an encoding it cannot undo");
        break;
    }
    require(c.form == encrypted_form::none || section.has_separator,
            "a form claimed by a header section without its empty line");
    std::size_t types = 0;
    for (const auto& f : section.fields) {
        types += f.is("Content-Type") ? 1 : 0;
    }
    require(types <= 1 || c.form == encrypted_form::none,
            "a form claimed under two Content-Type fields");
}

std::size_t header_limit(std::uint8_t options) {
    switch (options & 0x03u) {
    case 1:
        return 4096;
    case 2:
        return 256;
    case 3:
        return 64;
    default:
        return header_section_limit;
    }
}

} // namespace
} // namespace mailseal::seal

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // Process-wide, as in the daemon's main(): classify() parses Content-Type with gmime.
    static const mailseal::seal::gmime_library gmime;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace mailseal::seal;
    const auto in = mailseal::fuzz::split_input::parse(data, size);
    const std::size_t limit = header_limit(in.options);

    canonicalizer whole_canonicalizer;
    std::string canonical;
    whole_canonicalizer.feed(in.payload, canonical);
    require(canonical == canonical_reference(in.payload),
            "the canonical form is not the input with CR before each bare LF");

    canonicalizer piece_canonicalizer;
    std::vector<std::string> canonical_pieces;
    std::string joined;
    for (std::string_view piece : in.pieces()) {
        canonical_pieces.emplace_back();
        piece_canonicalizer.feed(piece, canonical_pieces.back());
        joined += canonical_pieces.back();
    }
    require(joined == canonical, "another canonical form when fed in pieces");

    const scanned whole = scan({canonical}, limit);
    const scanned pieces = scan(canonical_pieces, limit);
    require(same_fields(whole.section, pieces.section) && whole.body == pieces.body,
            "another header section or body when fed in pieces");

    std::string rebuilt;
    for (const auto& f : whole.section.fields) {
        rebuilt += f.raw;
    }
    rebuilt += whole.section.has_separator ? "\r\n" : "";
    rebuilt += whole.body;
    require(rebuilt == canonical, "fields, separator and body are not the message");

    check_fields(whole.section);
    check_classification(whole.section);
    return 0;
}
