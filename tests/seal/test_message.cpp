// SPDX-License-Identifier: Apache-2.0
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/seal/message.hpp>

namespace mailseal::seal {
namespace {

std::string canonical(const std::vector<std::string>& chunks) {
    canonicalizer c;
    std::string out;
    for (const auto& chunk : chunks) {
        c.feed(chunk, out);
    }
    return out;
}

TEST(canonicalizer, turns_bare_lf_into_crlf_across_chunks) {
    struct row {
        std::vector<std::string> in;
        std::string want;
    };
    for (const auto& r : std::vector<row>{
             {{"a\r\nb\nc\n"}, "a\r\nb\r\nc\r\n"},
             {{"a\r", "\nb"}, "a\r\nb"},   // CRLF split between chunks stays one CRLF
             {{"a\r", "x\n"}, "a\rx\r\n"}, // a bare CR is kept
             {{"\n\n"}, "\r\n\r\n"},       // empty lines
             {{"", "a"}, "a"},
         }) {
        EXPECT_EQ(canonical(r.in), r.want) << testing::PrintToString(r.in);
    }
}

TEST(canonicalizer, a_canonical_chunk_is_passed_on_without_a_copy) {
    // Every split of texts with CRLF, a bare LF at each place a 16-octet step can put it, a
    // bare CR, and CRLFs split between chunks: the view gives what feed() gives, and is the
    // input itself when that is canonical.
    std::vector<std::string> texts = {"line one\r\nline two\r\n", "\r\n\r\n", "a\r\rb\r\n"};
    for (std::size_t at = 0; at < 40; ++at) {
        std::string text(40, 'x');
        for (std::size_t i = 10; i < 40; i += 10) {
            text.replace(i, 2, "\r\n");
        }
        text[at] = '\n';
        texts.push_back(text);
    }
    for (const auto& text : texts) {
        for (std::size_t split = 0; split <= text.size(); ++split) {
            canonicalizer by_feed;
            canonicalizer by_view;
            std::string want;
            std::string got;
            for (std::string_view chunk :
                 {std::string_view(text).substr(0, split), std::string_view(text).substr(split)}) {
                std::string before_feed = want;
                by_feed.feed(chunk, want);
                std::string scratch;
                std::string_view view = by_view.canonical(chunk, scratch);
                EXPECT_EQ(view, std::string_view(want).substr(before_feed.size()))
                    << testing::PrintToString(text) << " split at " << split;
                if (view == chunk) {
                    EXPECT_EQ(view.data(), chunk.data()) << "canonical input was copied";
                    EXPECT_TRUE(scratch.empty());
                }
                got += view;
            }
            EXPECT_EQ(got, want);
        }
    }
}

struct scanned {
    header_section section;
    std::string body;
};

/// Feeds `message` in pieces of `step` bytes (0: whole) and finishes.
scanned scan(const std::string& message, std::size_t step = 0, std::size_t limit = 4096) {
    header_scanner s(limit);
    std::string body;
    if (step == 0) {
        s.feed(message, body);
    } else {
        for (std::size_t i = 0; i < message.size(); i += step) {
            s.feed(std::string_view(message).substr(i, step), body);
        }
    }
    s.finish(body);
    return {s.section(), body};
}

std::vector<std::string> names(const header_section& h) {
    std::vector<std::string> out;
    for (const auto& f : h.fields) {
        out.push_back(f.name);
    }
    return out;
}

TEST(header_scanner, splits_fields_keeping_raw_bytes) {
    std::string msg =
        "From: a@b\r\nSubject: one\r\n two\r\nContent-Type: text/plain;\r\n\tcharset=utf-8"
        "\r\nX-Weird :  spaced\r\n\r\nbody\r\nSubject: not a header\r\n";
    for (std::size_t step : {0u, 1u, 3u, 7u}) {
        auto got = scan(msg, step);
        EXPECT_EQ(names(got.section),
                  (std::vector<std::string>{"From", "Subject", "Content-Type", "X-Weird"}))
            << "step " << step;
        ASSERT_EQ(got.section.fields.size(), 4u);
        EXPECT_EQ(got.section.fields[1].raw, "Subject: one\r\n two\r\n");
        EXPECT_EQ(got.section.fields[1].value(), "one two");
        EXPECT_EQ(got.section.fields[2].value(), "text/plain;\tcharset=utf-8");
        EXPECT_TRUE(got.section.has_separator);
        EXPECT_EQ(got.body, "body\r\nSubject: not a header\r\n") << "step " << step;
    }
}

TEST(header_scanner, malformed_sections) {
    struct row {
        const char* name;
        std::string in;
        std::vector<std::string> fields;
        bool separator;
        std::string body;
    };
    for (const auto& r : std::vector<row>{
             // A line that is neither a field nor a continuation starts the body.
             {"non_field_line",
              "Subject: x\r\nno colon here\r\nmore\r\n",
              {"Subject"},
              false,
              "no colon here\r\nmore\r\n"},
             {"mbox_from_line",
              "From someone Tue\r\nSubject: x\r\n\r\nb\r\n",
              {},
              false,
              "From someone Tue\r\nSubject: x\r\n\r\nb\r\n"},
             {"leading_continuation",
              " folded\r\nSubject: x\r\n\r\n",
              {},
              false,
              " folded\r\nSubject: x\r\n\r\n"},
             {"no_body", "Subject: x\r\nTo: y\r\n", {"Subject", "To"}, false, ""},
             {"last_line_unterminated", "Subject: x\r\nTo: y", {"Subject"}, false, "To: y"},
             {"empty_message", "", {}, false, ""},
             {"only_separator", "\r\n", {}, true, ""},
             {"colon_first", ": x\r\n\r\n", {}, false, ": x\r\n\r\n"},
             {"space_in_name", "Bad Name: x\r\n\r\n", {}, false, "Bad Name: x\r\n\r\n"},
         }) {
        auto got = scan(r.in);
        EXPECT_EQ(names(got.section), r.fields) << r.name;
        EXPECT_EQ(got.section.has_separator, r.separator) << r.name;
        EXPECT_EQ(got.body, r.body) << r.name;
    }
}

TEST(header_scanner, oversized_section_is_all_body) {
    std::string msg = "Subject: x\r\n";
    while (msg.size() < 200) {
        msg += "X-Filler: yyyyyyyyyyyyyyyy\r\n";
    }
    msg += "\r\nbody\r\n";
    // Fed whole, the section's end is in sight, but past the limit all the same.
    for (std::size_t step : {0u, 1u, 10u}) {
        auto got = scan(msg, step, 100);
        EXPECT_TRUE(got.section.fields.empty()) << "step " << step;
        EXPECT_EQ(got.body, msg) << "every byte is kept, in order; step " << step;
    }
}

header_section headers_of(const std::string& fields) {
    return scan(fields + "\r\n").section;
}

TEST(classify, by_top_level_mime_structure) {
    using check = classification::body_check;
    struct row {
        std::string headers;
        encrypted_form form;
        check body_check;
    };
    const std::string pgp =
        "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
        "boundary=x\r\n";
    for (const auto& r : std::vector<row>{
             {pgp, encrypted_form::pgp_mime, check::pgp_mime},
             {"Content-Type: multipart/encrypted (PGP); boundary=q;\r\n protocol="
              "\"Application/PGP-Encrypted\"\r\n",
              encrypted_form::pgp_mime, check::pgp_mime},
             // No boundary: no parts to check. A transfer-encoded multipart is invalid.
             {"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"\r\n",
              encrypted_form::none, check::none},
             {pgp + "Content-Transfer-Encoding: base64\r\n", encrypted_form::none, check::none},
             // RFC 3156 names the protocol; without it the label proves nothing.
             {"Content-Type: multipart/encrypted; boundary=x\r\n", encrypted_form::none,
              check::none},
             {"Content-Type: multipart/encrypted; protocol=\"text/plain\"; boundary=x\r\n",
              encrypted_form::none, check::none},
             {"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; "
              "name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n",
              encrypted_form::smime_enveloped, check::cms},
             {"content-type: Application/X-PKCS7-MIME;\r\n smime-type=\"Enveloped-Data\"\r\n"
              "Content-Transfer-Encoding: BASE64\r\n",
              encrypted_form::smime_enveloped, check::cms},
             // MimeKit writes the parameter in lowercase; gmime 3.2 has no enum value for it.
             {"Content-Type: application/pkcs7-mime; smime-type=authenveloped-data\r\n"
              "Content-Transfer-Encoding: base64\r\n",
              encrypted_form::smime_authenveloped, check::cms},
             // Not base64: a body this check cannot read is sealed.
             {"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n",
              encrypted_form::none, check::none},
             // Signed-only and parameterless forms are not encrypted.
             {"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n"
              "Content-Transfer-Encoding: base64\r\n",
              encrypted_form::none, check::none},
             {"Content-Type: application/pkcs7-mime\r\nContent-Transfer-Encoding: base64\r\n",
              encrypted_form::none, check::none},
             {"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; "
              "boundary=b\r\n",
              encrypted_form::none, check::none},
             {"Content-Type: multipart/mixed; boundary=b\r\n", encrypted_form::none, check::none},
             {"Subject: no content type\r\n", encrypted_form::pgp_inline, check::armour},
             {"Content-Type: text/plain; charset=utf-8\r\n", encrypted_form::pgp_inline,
              check::armour},
             {"Content-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n",
              encrypted_form::pgp_inline, check::armour},
             // Armour under an encoding is checked decoded (K-9 Mail, webmails).
             {"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n",
              encrypted_form::pgp_inline, check::armour},
             {"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n",
              encrypted_form::pgp_inline, check::armour},
             {"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n",
              encrypted_form::none, check::none},
             // Parameters readers take differently: twice, or octets gmime drops (a field it
             // does not take is text/plain's: the whole body must then be armour).
             {"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
              "boundary=x; boundary=y\r\n",
              encrypted_form::none, check::none},
             {"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
              "boundary=\"x\xf9\"\r\n",
              encrypted_form::pgp_inline, check::armour},
             {"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
              "boundary=\"" +
                  std::string(71, 'x') + "\"\r\n",
              encrypted_form::none, check::none},
             {"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; "
              "smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n",
              encrypted_form::none, check::none},
             // Two Content-Type (or encoding) fields: readers disagree on which counts (gmime
             // takes the last), so the message is plaintext whichever comes first.
             {pgp + "Content-Type: text/plain\r\n", encrypted_form::none, check::none},
             {"Content-Type: text/plain\r\n" + pgp, encrypted_form::none, check::none},
             {"Content-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n"
              "Content-Transfer-Encoding: base64\r\n",
              encrypted_form::none, check::none},
         }) {
        auto got = classify(headers_of(r.headers));
        EXPECT_EQ(got.form, r.form) << r.headers << " got " << to_string(got.form);
        if (got.check == check::armour) {
            EXPECT_EQ(got.encoding,
                      transfer_encoding_of(headers_of(r.headers).find("Content-Transfer-Encoding")))
                << r.headers;
        }
        EXPECT_EQ(got.check, r.body_check) << r.headers;
        if (got.check == check::pgp_mime) {
            EXPECT_TRUE(got.boundary == "x" || got.boundary == "q") << r.headers;
        }
    }
    // A header section that does not end with an empty line: readers (gmime, Dovecot) read
    // on as headers where mailseal sees the body.
    header_scanner unended(4096);
    std::string body;
    unended.feed("Content-Type: text/plain\r\n--b\r\n", body);
    unended.finish(body);
    EXPECT_EQ(classify(unended.section()).form, encrypted_form::none);
}

TEST(valid_boundary, rfc2046_characters) {
    EXPECT_TRUE(valid_boundary("b1"));
    EXPECT_TRUE(valid_boundary("------------9a7F'()+_,-./:=? x"));
    EXPECT_TRUE(valid_boundary(std::string(70, 'x')));
    EXPECT_FALSE(valid_boundary(std::string(71, 'x')));
    EXPECT_FALSE(valid_boundary(""));
    EXPECT_FALSE(valid_boundary("ends in space "));
    EXPECT_FALSE(valid_boundary("semi;colon"));
    EXPECT_FALSE(valid_boundary("b\xf9"));
}

} // namespace
} // namespace mailseal::seal
