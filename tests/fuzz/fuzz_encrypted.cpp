// SPDX-License-Identifier: Apache-2.0
// Fuzzes the checks that decide whether a body is already encrypted
// (include/mailseal/seal/encrypted.hpp): the OpenPGP packet and CMS envelope checks, the
// armour, base64 and PGP/MIME scanners, and the transfer decoders.
//
// Oracles: a verdict does not depend on how the body is cut into pieces (the sealer feeds
// whatever the socket delivered); once a check says a body is no longer possible it never says
// yes at the end; base64_stream decodes exactly what a plain reference decoder does.
//
// Input (split_input.hpp), option bits 0-2: which check (openpgp_packet_check,
// cms_envelope_check, armour_scanner, cms_scanner, pgp_mime_scanner with boundary "b1", armour
// under quoted-printable, armour under base64, base64_stream).

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <mailseal/seal/encrypted.hpp>

#include "oracle.hpp"
#include "split_input.hpp"

namespace mailseal::seal {
namespace {

using fuzz::require;

/// The same interface over the binary checks and the body scanners.
struct check {
    virtual ~check() = default;
    virtual void feed(std::string_view bytes) = 0;
    virtual bool still_possible() const = 0;
    virtual bool finish() = 0;
};

template <typename Checked>
struct wrapped final : check {
    Checked inner;
    template <typename... Args>
    explicit wrapped(Args&&... args) : inner(args...) {}
    void feed(std::string_view bytes) override { inner.feed(bytes); }
    bool still_possible() const override { return inner.still_possible(); }
    bool finish() override { return inner.finish(); }
};

struct scanner final : check {
    std::unique_ptr<body_scanner> inner;
    explicit scanner(std::unique_ptr<body_scanner> s) : inner(std::move(s)) {}
    void feed(std::string_view bytes) override { inner->feed(bytes); }
    bool still_possible() const override { return inner->still_possible(); }
    bool finish() override { return inner->finish(); }
};

std::unique_ptr<check> make_check(std::uint8_t which) {
    using body = classification::body_check;
    switch (which) {
    case 0:
        return std::make_unique<wrapped<openpgp_packet_check>>();
    case 1:
        return std::make_unique<wrapped<cms_envelope_check>>();
    case 2:
        return std::make_unique<wrapped<armour_scanner>>();
    case 3:
        return std::make_unique<wrapped<cms_scanner>>();
    case 4:
        return std::make_unique<scanner>(make_body_scanner(
            {encrypted_form::pgp_mime, body::pgp_mime, "b1", transfer_encoding::identity}));
    case 5:
        return std::make_unique<scanner>(make_body_scanner(
            {encrypted_form::pgp_inline, body::armour, {}, transfer_encoding::quoted_printable}));
    default:
        return std::make_unique<scanner>(make_body_scanner(
            {encrypted_form::pgp_inline, body::armour, {}, transfer_encoding::base64}));
    }
}

bool run(std::uint8_t which, const std::vector<std::string_view>& pieces) {
    auto c = make_check(which);
    bool gave_up = false;
    for (auto piece : pieces) {
        c->feed(piece);
        if (!c->still_possible()) {
            gave_up = true;
        } else {
            require(!gave_up, "possible again after it was not");
        }
    }
    bool verdict = c->finish();
    require(!(gave_up && verdict), "a yes after the body was no longer possible");
    return verdict;
}

/// RFC 4648 §4 decoding, written plainly: white space skipped, padding only at the end.
std::optional<std::string> base64_reference(std::string_view text) {
    static constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string digits;
    std::size_t padding = 0;
    for (char c : text) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            continue;
        }
        if (c == '=') {
            ++padding;
        } else if (padding > 0 || alphabet.find(c) == std::string_view::npos) {
            return std::nullopt;
        } else {
            digits += c;
        }
    }
    auto rest = digits.size() % 4;
    if (rest == 1 || (padding > 0 && (rest < 2 || rest + padding != 4))) {
        return std::nullopt;
    }
    std::string out;
    std::uint32_t bits = 0;
    int held = 0;
    for (char c : digits) {
        bits = (bits << 6) | static_cast<std::uint32_t>(alphabet.find(c));
        if (++held == 4) {
            out += static_cast<char>(bits >> 16);
            out += static_cast<char>(bits >> 8);
            out += static_cast<char>(bits);
            bits = 0;
            held = 0;
        }
    }
    if (held == 2) {
        out += static_cast<char>(bits >> 4);
    } else if (held == 3) {
        out += static_cast<char>(bits >> 10);
        out += static_cast<char>(bits >> 2);
    }
    return out;
}

void check_base64(const std::vector<std::string_view>& pieces, std::string_view whole) {
    base64_stream b;
    std::string out;
    bool ok = true;
    for (auto piece : pieces) {
        ok = b.feed(piece, out) && ok;
    }
    ok = b.finish(out) && ok;
    auto want = base64_reference(whole);
    require(ok == want.has_value(), "base64_stream and the reference disagree on validity");
    require(!ok || out == *want, "base64_stream decodes other bytes than the reference");
}

} // namespace
} // namespace mailseal::seal

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // pgp_mime_scanner parses part headers' Content-Type with gmime.
    static const mailseal::seal::gmime_library gmime;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace mailseal::seal;
    const auto in = mailseal::fuzz::split_input::parse(data, size);
    const auto which = static_cast<std::uint8_t>(in.options & 0x07u);
    const auto pieces = in.pieces();
    if (which == 7) {
        check_base64(pieces, in.payload);
        return 0;
    }
    bool whole = run(which, {in.payload});
    require(run(which, pieces) == whole, "another verdict when fed in pieces");
    return 0;
}
