// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/seal/encrypted.hpp>

#include "samples.hpp"

namespace mailseal::seal {
namespace {

using namespace test::samples;

/// The verdict of a check fed `input` whole, in two pieces split at every point, and byte by
/// byte; all must agree, or the test fails.
template <typename Check>
bool verdict(const std::string& input, const std::string& label) {
    auto run = [&](const std::vector<std::size_t>& cuts) {
        Check c;
        std::size_t from = 0;
        for (auto cut : cuts) {
            c.feed(std::string_view(input).substr(from, cut - from));
            from = cut;
        }
        c.feed(std::string_view(input).substr(from));
        return c.finish();
    };
    bool whole = run({});
    for (std::size_t k = 1; k < input.size(); ++k) {
        EXPECT_EQ(run({k}), whole) << label << " split at " << k;
    }
    std::vector<std::size_t> every;
    for (std::size_t k = 1; k < input.size(); ++k) {
        every.push_back(k);
    }
    EXPECT_EQ(run(every), whole) << label << " byte by byte";
    return whole;
}

TEST(transfer_decoder, undoes_each_encoding_across_pieces) {
    struct row {
        transfer_encoding encoding;
        std::string text;
        bool ok;
        std::string want;
    };
    for (const auto& r : std::vector<row>{
             {transfer_encoding::identity, "as =is\r\n", true, "as =is\r\n"},
             {transfer_encoding::base64, "aGk=\r\n", true, "hi"},
             {transfer_encoding::quoted_printable, "Version: 1=0D=0A\r\n", true,
              "Version: 1\r\n\r\n"},
             {transfer_encoding::quoted_printable, "=3DnjUN\r\nsoft=\r\nbreak\r\n", true,
              "=njUN\r\nsoftbreak\r\n"},
             {transfer_encoding::quoted_printable, "bad =G1\r\n", false, ""},
             {transfer_encoding::quoted_printable, "bad =\rx\n", false, ""},
             {transfer_encoding::quoted_printable, "ends in =", false, ""},
             {transfer_encoding::other, "x", false, ""},
         }) {
        for (std::size_t step : {0u, 1u, 2u}) {
            transfer_decoder d(r.encoding);
            std::string out;
            bool ok = true;
            if (step == 0) {
                ok = d.feed(r.text, out);
            } else {
                for (std::size_t i = 0; i < r.text.size(); i += step) {
                    ok = d.feed(std::string_view(r.text).substr(i, step), out) && ok;
                }
            }
            ok = d.finish(out) && ok;
            EXPECT_EQ(ok, r.ok) << r.text << " step " << step;
            if (r.ok) {
                EXPECT_EQ(out, r.want) << r.text << " step " << step;
            }
        }
    }
}

TEST(randomness_probe, tells_ciphertext_from_text) {
    auto random = [](const std::string& b) {
        randomness_probe p;
        p.feed(b);
        return p.looks_random();
    };
    for (std::uint64_t seed = 1; seed <= 200; ++seed) {
        for (std::size_t n : {256u, 1000u, 4096u, 100000u}) {
            ASSERT_TRUE(random(random_bytes(n, seed * 7919))) << seed << " " << n;
        }
    }
    std::string prose;
    while (prose.size() < 300) {
        prose += "Meet me at the old bridge at nine, bring the documents. ";
    }
    EXPECT_FALSE(random(prose));
    EXPECT_FALSE(random(std::string(256, '\0')));
    // Bytes decoded from text made of base64 letters are no ciphertext either.
    std::string letters;
    for (std::size_t i = 0; letters.size() < 1024; ++i) {
        letters += "MeetmeattheoldbridgeatnineBringthedocuments"[i % 43];
    }
    std::string decoded;
    base64_stream b;
    ASSERT_TRUE(b.feed(letters, decoded));
    EXPECT_FALSE(random(decoded));
    EXPECT_TRUE(random(std::string(255, 'x'))) << "too few to tell";
}

TEST(base64_stream, decodes_across_pieces_and_refuses_what_is_not_base64) {
    struct row {
        std::string text;
        bool ok;
        std::string want;
    };
    for (const auto& r : std::vector<row>{
             {"aGVsbG8=\r\n", true, "hello"},
             {"aGVs\r\n bG8h\r\n", true,
              "hell"
              "o!"},
             {"aGVsbA==", true, "hell"},
             {"aGVsbA", true, "hell"}, // unpadded end
             {"", true, ""},
             {"aGVsbG8=aGVs", false, ""}, // data after the padding
             {"aGVs*bG8h", false, ""},
             {"a===", false, ""},
             {"aGVsb", false, ""}, // one character cannot end a group
         }) {
        for (std::size_t step : {0u, 1u, 3u}) {
            base64_stream b;
            std::string out;
            bool ok = true;
            if (step == 0) {
                ok = b.feed(r.text, out);
            } else {
                for (std::size_t i = 0; i < r.text.size(); i += step) {
                    ok = b.feed(std::string_view(r.text).substr(i, step), out) && ok;
                }
            }
            ok = b.finish(out) && ok;
            EXPECT_EQ(ok, r.ok) << r.text << " step " << step;
            if (r.ok) {
                EXPECT_EQ(out, r.want) << r.text;
            }
        }
    }
}

// Besides samples.hpp's packets: 0xc9 SED, 0xd4 the AEAD packet, 0xc8 compressed data;
// 0x84/0x85 an old-format PKESK with one and two length octets, 0xa4 an old-format SED, 0xa7
// one of indeterminate length, 0x87 a PKESK of indeterminate length.
TEST(openpgp_packet_check, session_keys_then_one_encrypted_packet_to_the_end) {
    struct row {
        const char* name;
        std::string packets;
        bool want;
    };
    for (const auto& r : std::vector<row>{
             {"pkesk_seipd", pkesk + seipd, true},
             {"two_recipients", pkesk + pkesk + seipd, true},
             {"symmetric", skesk + seipd, true},
             {"both", pkesk + skesk + seipd, true},
             {"seipd_v2", pkesk + bytes({0xd2, 0x03, 0x02, 0x09, 0x02}), true},
             {"legacy_sed", pkesk + bytes({0xc9, 0x03, 0x11, 0x22, 0x33}), true},
             {"aead_packet", pkesk + bytes({0xd4, 0x03, 0x01, 0x09, 0x02}), true},
             {"pkesk_v6", bytes({0xc1, 0x03, 0x06, 0x00, 0x19}) + seipd, true},
             {"old_format_lengths",
              bytes({0x84, 0x04, 0x03, 1, 2, 3}) + bytes({0x85, 0x00, 0x04, 0x03, 1, 2, 3}) +
                  bytes({0xa4, 0x03, 0x11, 0x22, 0x33}),
              true},
             {"old_format_indeterminate", pkesk + bytes({0xa7, 0x11, 0x22, 0x33, 0x44}), true},
             // Two-octet (0xc0 0x00 = 192) and five-octet lengths.
             {"random_payload", pkesk + bytes({0xd2, 0xc4, 0x00, 0x01}) + random_bytes(1215), true},
             {"text_payload",
              pkesk + bytes({0xd2, 0xc4, 0x00, 0x01}) +
                  std::string(1215, 'x').replace(0, 7, "hunter2"),
              false},
             // An RSA-3072 PKESK: 16 octets of header, then the encrypted session key.
             {"long_session_key", bytes({0xc1, 0xc0, 0xcc, 0x03}) + random_bytes(395) + seipd,
              true},
             {"text_as_session_key",
              bytes({0xc1, 0xc0, 0xcc, 0x03}) + std::string(395, 't') + seipd, false},
             {"session_key_too_long",
              bytes({0xc1, 0xff, 0, 0, 0x0a, 0x01, 0x03}) + random_bytes(2560) + seipd, false},
             {"too_many_session_keys",
              [] {
                  std::string p;
                  for (int i = 0; i < 257; ++i) {
                      p += skesk;
                  }
                  return p;
              }() +
                  seipd,
              false},
             {"long_lengths", pkesk + bytes({0xd2, 0xc0, 0x00, 0x01}) + std::string(191, 'x'),
              true},
             {"five_octet_length", pkesk + bytes({0xd2, 0xff, 0, 0, 0, 3, 0x01, 0x02, 0x03}), true},
             // Partial lengths: chunks of 2 (0xe1) and 1 (0xe0), then a final 2.
             {"partial_lengths",
              pkesk + bytes({0xd2, 0xe1, 0x01, 0x11, 0xe0, 0x22, 0x02, 0x33, 0x44}), true},
             {"partial_with_empty_final", pkesk + bytes({0xd2, 0xe1, 0x01, 0x11, 0x00}), true},

             {"empty", "", false},
             {"literal_only", literal, false},
             {"compressed_only", bytes({0xc8, 0x03, 0x01, 0x78, 0x9c}), false},
             {"data_without_session_key", seipd, false},
             {"session_key_only", pkesk, false},
             {"literal_after_encrypted", pkesk + seipd + literal, false},
             {"second_encrypted_packet", pkesk + seipd + seipd, false},
             {"literal_between", pkesk + literal + seipd, false},
             {"truncated_packet", pkesk + seipd.substr(0, 5), false},
             {"truncated_length", pkesk + bytes({0xd2, 0xff, 0, 0}), false},
             {"not_a_packet", "my password is hunter2", false},
             {"unknown_seipd_version", pkesk + bytes({0xd2, 0x02, 0x05, 0x00}), false},
             {"unknown_pkesk_version", bytes({0xc1, 0x02, 0x02, 0x00}) + seipd, false},
             {"empty_session_key", bytes({0xc1, 0x00}) + seipd, false},
             {"partial_session_key", bytes({0xc1, 0xe1, 0x03, 0x00, 0x02, 0x03, 0x00}) + seipd,
              false},
             {"indeterminate_session_key", bytes({0x87, 0x03, 0x00}), false},
             {"partial_never_ends", pkesk + bytes({0xd2, 0xe1, 0x01, 0x11}), false},
         }) {
        EXPECT_EQ(verdict<openpgp_packet_check>(r.packets, r.name), r.want) << r.name;
    }
}

/// A DER element.
std::string tlv(int tag, const std::string& content) {
    std::string out(1, static_cast<char>(tag));
    auto n = content.size();
    if (n < 0x80) {
        out += static_cast<char>(n);
    } else if (n < 0x100) {
        out += bytes({0x81, static_cast<int>(n)});
    } else {
        out += bytes({0x82, static_cast<int>(n >> 8), static_cast<int>(n & 0xff)});
    }
    return out + content;
}

/// A BER element of indefinite length.
std::string indefinite(int tag, const std::string& content) {
    return bytes({tag, 0x80}) + content + bytes({0, 0});
}

const std::string oid_enveloped = tlv(0x06, bytes({0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 7, 3}));
const std::string oid_auth_enveloped =
    tlv(0x06, bytes({0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 9, 0x10, 1, 0x17}));
const std::string oid_signed = tlv(0x06, bytes({0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 7, 2}));
const std::string oid_data = tlv(0x06, bytes({0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 7, 1}));
const std::string version0 = tlv(0x02, bytes({0}));
const std::string ktri =
    tlv(0x30, version0 + tlv(0x30, tlv(0x30, tlv(0x0c, "issuer")) + tlv(0x02, bytes({7}))) +
                  tlv(0x30, tlv(0x06, bytes({0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 1}))) +
                  tlv(0x04, std::string(16, 'k')));
const std::string recipients = tlv(0x31, ktri);
const std::string aes_cbc = tlv(0x30, tlv(0x06, bytes({0x60, 0x86, 0x48, 1, 0x65, 3, 4, 1, 42})) +
                                          tlv(0x04, std::string(16, 'i')));
const std::string ciphertext = std::string(32, '\x5a');
const std::string eci = tlv(0x30, oid_data + aes_cbc + tlv(0x80, ciphertext));

std::string content_info(const std::string& oid, const std::string& envelope) {
    return tlv(0x30, oid + tlv(0xa0, envelope));
}

TEST(cms_envelope_check, the_whole_content_info_is_an_envelope) {
    const std::string enveloped = tlv(0x30, version0 + recipients + eci);
    const std::string mac = tlv(0x04, std::string(16, 'm'));
    struct row {
        const char* name;
        std::string der;
        bool want;
    };
    for (const auto& r : std::vector<row>{
             {"enveloped_der", content_info(oid_enveloped, enveloped), true},
             // OpenSSL's -stream output: indefinite lengths, the content in chunks.
             {"enveloped_ber",
              indefinite(
                  0x30,
                  oid_enveloped +
                      indefinite(
                          0xa0,
                          indefinite(
                              0x30,
                              version0 + recipients +
                                  indefinite(0x30, oid_data + aes_cbc +
                                                       indefinite(0xa0, tlv(0x04, ciphertext) +
                                                                            tlv(0x04, "zz")))))),
              true},
             {"originator_info_and_attributes",
              content_info(oid_enveloped,
                           tlv(0x30, tlv(0x02, bytes({2})) + tlv(0xa0, tlv(0xa0, tlv(0x04, "c"))) +
                                         recipients + eci + tlv(0xa1, tlv(0x30, oid_data)))),
              true},
             {"two_recipients",
              content_info(oid_enveloped, tlv(0x30, version0 + tlv(0x31, ktri + ktri) + eci)),
              true},
             {"nested_constructed_string",
              content_info(oid_enveloped,
                           tlv(0x30, version0 + recipients +
                                         tlv(0x30, oid_data + aes_cbc +
                                                       tlv(0xa0, tlv(0x24, tlv(0x04, "ab")))))),
              true},
             {"auth_enveloped",
              content_info(oid_auth_enveloped, tlv(0x30, version0 + recipients + eci + mac)), true},
             {"auth_enveloped_with_attributes",
              content_info(oid_auth_enveloped,
                           tlv(0x30, version0 + recipients + eci + tlv(0xa1, tlv(0x30, oid_data)) +
                                         mac + tlv(0xa2, tlv(0x30, oid_data)))),
              true},

             // The reproduction: 13 right bytes, then plaintext.
             {"prefix_then_text",
              bytes(
                  {0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03}) +
                  "my password is hunter2",
              false},
             {"bytes_after_the_end", content_info(oid_enveloped, enveloped) + "hunter2", false},
             {"signed_data", content_info(oid_signed, enveloped), false},
             {"no_recipient",
              content_info(oid_enveloped, tlv(0x30, version0 + tlv(0x31, "") + eci)), false},
             {"no_encrypted_content",
              content_info(oid_enveloped,
                           tlv(0x30, version0 + recipients + tlv(0x30, oid_data + aes_cbc))),
              false},
             {"empty_encrypted_content",
              content_info(
                  oid_enveloped,
                  tlv(0x30, version0 + recipients + tlv(0x30, oid_data + aes_cbc + tlv(0x80, "")))),
              false},
             {"text_as_a_field",
              content_info(oid_enveloped, tlv(0x30, version0 + recipients + eci + tlv(0x0c, "hi"))),
              false},
             {"auth_without_mac",
              content_info(oid_auth_enveloped, tlv(0x30, version0 + recipients + eci)), false},
             {"fields_out_of_order",
              content_info(oid_enveloped, tlv(0x30, recipients + version0 + eci)), false},
             {"text_in_a_string_chunk",
              content_info(
                  oid_enveloped,
                  tlv(0x30, version0 + recipients +
                                tlv(0x30, oid_data + aes_cbc + tlv(0xa0, tlv(0x0c, "hunter2"))))),
              false},
             {"second_content",
              tlv(0x30, oid_enveloped + tlv(0xa0, enveloped) + tlv(0xa0, enveloped)), false},
             {"child_overruns_parent", bytes({0x30, 0x05}) + oid_enveloped, false},
             {"primitive_indefinite", bytes({0x30, 0x80, 0x04, 0x80, 0, 0, 0, 0}), false},
             {"stray_end_of_contents", tlv(0x30, bytes({0, 0})), false},
             {"truncated", content_info(oid_enveloped, enveloped).substr(0, 40), false},
             {"nine_length_octets", bytes({0x30, 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 1}), false},
             {"empty", "", false},
         }) {
        EXPECT_EQ(verdict<cms_envelope_check>(r.der, r.name), r.want) << r.name;
    }
}

TEST(cms_envelope_check, nesting_is_bounded) {
    std::string deep;
    for (int i = 0; i < 200; ++i) {
        deep += bytes({0x30, 0x80});
    }
    cms_envelope_check c;
    c.feed(deep);
    EXPECT_FALSE(c.still_possible());
}

TEST(armour_scanner, whole_body_must_be_one_armoured_encrypted_message) {
    auto armour = [](const std::string& packets) {
        return "-----BEGIN PGP MESSAGE-----\r\n\r\n" + base64(packets, 64) +
               "-----END PGP MESSAGE-----\r\n";
    };
    struct row {
        const char* name;
        std::string body;
        bool want;
    };
    for (const auto& r : std::vector<row>{
             {"armour", armoured_message, true},
             {"blank_lines_around", "\r\n  \r\n" + armoured_message + "\r\n\t\r\n", true},
             {"no_armour_headers", armour(pkesk + seipd), true},
             {"no_final_line_end",
              armour(pkesk + seipd).substr(0, armour(pkesk + seipd).size() - 2), true},
             {"symmetric", armour(skesk + seipd), true},
             {"long_message", armour(pkesk + bytes({0xd2, 0xc1, 0x00, 0x01}) + random_bytes(447)),
              true},
             {"text_in_the_encrypted_packet",
              armour(pkesk + bytes({0xd2, 0xc1, 0x00, 0x01}) +
                     std::string(447, 'x').replace(0, 22, "my password is hunter2")),
              false},
             {"space_inside_a_line",
              "-----BEGIN PGP MESSAGE-----\r\n\r\n" + base64(pkesk + seipd, 64).insert(8, " ") +
                  "-----END PGP MESSAGE-----\r\n",
              false},
             {"too_many_armour_headers",
              "-----BEGIN PGP MESSAGE-----\r\n" +
                  [] {
                      std::string h;
                      for (int i = 0; i < 17; ++i) {
                          h += "Comment: line " + std::to_string(i) + "\r\n";
                      }
                      return h;
                  }() +
                  "\r\n" + base64(pkesk + seipd) + "-----END PGP MESSAGE-----\r\n",
              false},
             // Longer than any armour line, whichever pieces it arrives in.
             {"line_of_1001",
              "-----BEGIN PGP MESSAGE-----\r\n\r\n" + std::string(1001, 'A') +
                  "\r\n-----END PGP MESSAGE-----\r\n",
              false},

             {"quoted_in_text", "See below:\r\n" + armoured_message, false},
             {"text_after_end", armoured_message + "Sent from my phone\r\n", false},
             {"plain_text_inside",
              "-----BEGIN PGP MESSAGE-----\r\n\r\nmy password is hunter2\r\n"
              "-----END PGP MESSAGE-----\r\n",
              false},
             // Words made of base64 letters are still no packet.
             {"radix64_words",
              "-----BEGIN PGP MESSAGE-----\r\nVersion: 1\r\n\r\nThanks\r\nBob\r\n"
              "-----END PGP MESSAGE-----\r\n",
              false},
             {"free_text_header",
              "-----BEGIN PGP MESSAGE-----\r\nNote: the wire password is hunter2\r\n\r\n" +
                  base64(pkesk + seipd) + "-----END PGP MESSAGE-----\r\n",
              false},
             {"no_data", "-----BEGIN PGP MESSAGE-----\r\n\r\n-----END PGP MESSAGE-----\r\n", false},
             // gpg --store: a literal data packet, readable by anyone.
             {"literal_only", armour(literal), false},
             {"literal_after_encrypted", armour(pkesk + seipd + literal), false},
             {"line_too_long",
              "-----BEGIN PGP MESSAGE-----\r\n\r\n" +
                  base64(pkesk + seipd + std::string(80, 'x'), 80) +
                  "-----END PGP MESSAGE-----\r\n",
              false},
             {"short_line_in_the_middle",
              "-----BEGIN PGP MESSAGE-----\r\n\r\n" + base64(pkesk, 64).substr(0, 6) + "\r\n" +
                  base64(pkesk + seipd, 64).substr(6) + "-----END PGP MESSAGE-----\r\n",
              false},
             {"data_after_checksum",
              "-----BEGIN PGP MESSAGE-----\r\n\r\n" + base64(pkesk, 64) + "=njUN\r\n" +
                  base64(seipd, 64) + "-----END PGP MESSAGE-----\r\n",
              false},
             {"unterminated", "-----BEGIN PGP MESSAGE-----\r\n\r\n" + base64(pkesk + seipd), false},
             {"signed_message", "-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nhi\r\n",
              false},
             {"second_block_after_end", armoured_message + armoured_message, false},
             {"empty", "", false},
         }) {
        EXPECT_EQ(verdict<armour_scanner>(r.body, r.name), r.want) << r.name;
    }
}

TEST(cms_scanner, base64_body_must_hold_one_envelope) {
    const std::string der = content_info(oid_enveloped, tlv(0x30, version0 + recipients + eci));
    EXPECT_TRUE(verdict<cms_scanner>(base64(der), "der"));
    EXPECT_TRUE(verdict<cms_scanner>(base64(der, 64) + "\r\n\r\n", "trailing blank lines"));
    EXPECT_FALSE(verdict<cms_scanner>(base64(der) + "SGk=\r\n", "base64 after the padding"));
    EXPECT_FALSE(verdict<cms_scanner>(base64(der + "hunter2"), "bytes after the envelope"));
    EXPECT_FALSE(verdict<cms_scanner>(base64(der) + "-- \r\nSent from my phone\r\n", "signature"));
    EXPECT_FALSE(verdict<cms_scanner>(base64(bytes({0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                                    0xf7, 0x0d, 0x01, 0x07, 0x03}) +
                                             "my password is hunter2"),
                                      "the reproduction"));
}

struct pgp_mime_b1 final : body_scanner {
    pgp_mime_scanner inner{"b1"};
    void feed(std::string_view b) override { inner.feed(b); }
    bool still_possible() const override { return inner.still_possible(); }
    bool finish() override { return inner.finish(); }
};

TEST(pgp_mime_scanner, two_parts_version_and_one_encrypted_message) {
    const std::string control = "--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\n"
                                "Version: 1\r\n";
    const std::string data_headers = "--b1\r\nContent-Type: application/octet-stream\r\n\r\n";
    struct row {
        const char* name;
        std::string body;
        bool want;
    };
    for (const auto& r : std::vector<row>{
             {"thunderbird", pgp_mime_body(armoured_message), true},
             {"no_preamble", pgp_mime_body(armoured_message, ""), true},
             {"mutt", control + data_headers + armoured_message + "\r\n--b1--\r\n", true},
             {"gpgtools_preamble",
              pgp_mime_body(armoured_message,
                            "This is an OpenPGP/MIME encrypted message (RFC 2440 and 3156)\r\n"),
              true},
             {"binary_under_base64",
              control +
                  "--b1\r\nContent-Type: application/octet-stream\r\n"
                  "Content-Transfer-Encoding: base64\r\n\r\n" +
                  base64(pkesk + seipd) + "--b1--\r\n",
              true},
             {"transport_padding_and_epilogue",
              control + data_headers + armoured_message + "--b1--  \r\n\r\n", true},
             {"no_final_line_end", control + data_headers + armoured_message + "--b1--", true},
             // K-9 Mail: part 1 in quoted-printable.
             {"quoted_printable_control",
              "--b1\r\nContent-Type: application/pgp-encrypted\r\nContent-Transfer-Encoding: "
              "quoted-printable\r\n\r\nVersion: 1\r\n" +
                  data_headers + armoured_message + "--b1--\r\n",
              true},
             // emailjs (Mailvelope): both parts in base64, part 2 the armour text.
             {"base64_parts",
              "--b1\r\nContent-Type: application/pgp-encrypted\r\nContent-Transfer-Encoding: "
              "base64\r\n\r\n" +
                  base64("Version: 1\r\n") +
                  "--b1\r\nContent-Type: application/octet-stream\r\n"
                  "Content-Transfer-Encoding: base64\r\n\r\n" +
                  base64(armoured_message) + "--b1--\r\n",
              true},
             {"quoted_printable_armour",
              control +
                  "--b1\r\nContent-Type: application/octet-stream\r\n"
                  "Content-Transfer-Encoding: quoted-printable\r\n\r\n" +
                  std::string(armoured_message).replace(armoured_message.find("=njUN"), 1, "=3D") +
                  "--b1--\r\n",
              true},
             {"quoted_printable_control_with_text",
              "--b1\r\nContent-Type: application/pgp-encrypted\r\nContent-Transfer-Encoding: "
              "quoted-printable\r\n\r\nVersion: 1=0D=0Ahunter2\r\n" +
                  data_headers + armoured_message + "--b1--\r\n",
              false},
             {"base64_of_text",
              control +
                  "--b1\r\nContent-Type: application/octet-stream\r\n"
                  "Content-Transfer-Encoding: base64\r\n\r\n" +
                  base64("my password is hunter2\r\n") + "--b1--\r\n",
              false},

             // The reproduction: the label, and plaintext in part 2.
             {"plain_part",
              control +
                  "--b1\r\nContent-Type: text/plain\r\n\r\nmy password is hunter2\r\n--b1--\r\n",
              false},
             {"plain_octet_stream", control + data_headers + "my password is hunter2\r\n--b1--\r\n",
              false},
             {"literal_only",
              control + data_headers + "-----BEGIN PGP MESSAGE-----\r\n\r\n" + base64(literal) +
                  "-----END PGP MESSAGE-----\r\n--b1--\r\n",
              false},
             {"secret_in_preamble", pgp_mime_body(armoured_message, "my password is hunter2\r\n"),
              false},
             {"boilerplate_with_more",
              pgp_mime_body(armoured_message,
                            "This is an OpenPGP/MIME encrypted message (hunter2)\r\n"),
              false},
             {"text_in_epilogue",
              control + data_headers + armoured_message + "--b1--\r\nhunter2\r\n", false},
             {"third_part",
              control + data_headers + armoured_message +
                  "--b1\r\nContent-Type: text/plain\r\n\r\nhunter2\r\n--b1--\r\n",
              false},
             {"text_in_version_part",
              "--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\nhunter2\r\n" +
                  data_headers + armoured_message + "--b1--\r\n",
              false},
             {"no_version",
              "--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\n" + data_headers +
                  armoured_message + "--b1--\r\n",
              false},
             {"one_part_only", control + "--b1--\r\n", false},
             {"no_close_delimiter", control + data_headers + armoured_message, false},
             {"parts_swapped",
              data_headers + armoured_message +
                  "--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--b1--\r\n",
              false},
             {"two_content_types",
              control +
                  "--b1\r\nContent-Type: application/octet-stream\r\nContent-Type: "
                  "text/plain\r\n\r\n" +
                  armoured_message + "--b1--\r\n",
              false},
             {"quoted_printable",
              control +
                  "--b1\r\nContent-Type: application/octet-stream\r\n"
                  "Content-Transfer-Encoding: quoted-printable\r\n\r\n" +
                  armoured_message + "--b1--\r\n",
              false},
             {"lookalike_delimiter",
              control + data_headers + armoured_message + "--b1x\r\n--b1--\r\n", false},
             {"header_section_not_ended",
              control + "--b1\r\nContent-Type: application/octet-stream\r\nhunter2\r\n\r\n" +
                  armoured_message + "--b1--\r\n",
              false},
             {"empty", "", false},
         }) {
        EXPECT_EQ(verdict<pgp_mime_b1>(r.body, r.name), r.want) << r.name;
    }
}

std::string read_fixture(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    return content.str();
}

/// What real implementations write (fixtures/encrypted/README.md says which tool made which
/// file, and how).
TEST(fixtures, real_encrypted_objects_pass_and_the_others_do_not) {
    const std::vector<std::string> not_encrypted{"openssl-signed.der", "gpg-store.asc",
                                                 "gpg-compressed-only.asc", "gpg-signed.asc",
                                                 "gpg-trailing-literal.asc"};
    std::size_t checked = 0;
    for (const auto& entry : std::filesystem::directory_iterator(ENCRYPTED_FIXTURES)) {
        auto name = entry.path().filename().string();
        auto ext = entry.path().extension();
        auto content = read_fixture(entry.path());
        bool want =
            std::find(not_encrypted.begin(), not_encrypted.end(), name) == not_encrypted.end();
        if (ext == ".der" || ext == ".ber") {
            EXPECT_EQ(verdict<cms_envelope_check>(content, name), want) << name;
            EXPECT_EQ(verdict<cms_scanner>(base64(content), name), want) << name << " in base64";
        } else if (ext == ".pgp") {
            EXPECT_EQ(verdict<openpgp_packet_check>(content, name), want) << name;
        } else if (ext == ".asc") {
            // The tools write LF; a message body is canonical CRLF.
            std::string crlf;
            for (char c : content) {
                crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
            }
            EXPECT_EQ(verdict<armour_scanner>(crlf, name), want) << name;
            EXPECT_EQ(verdict<pgp_mime_b1>(pgp_mime_body(crlf), name), want)
                << name << " in PGP/MIME";
        } else {
            continue;
        }
        ++checked;
    }
    EXPECT_GE(checked, 20u);
}

TEST(make_body_scanner, follows_the_classification) {
    using check = classification::body_check;
    EXPECT_EQ(make_body_scanner({encrypted_form::none, check::none, {}, {}}), nullptr);
    auto scanner = make_body_scanner(
        {encrypted_form::pgp_mime, check::pgp_mime, "b1", transfer_encoding::identity});
    ASSERT_NE(scanner, nullptr);
    scanner->feed(pgp_mime_body(armoured_message));
    EXPECT_TRUE(scanner->finish());
    // Inline armour in quoted-printable: "=" is written "=3D".
    auto qp = make_body_scanner(
        {encrypted_form::pgp_inline, check::armour, {}, transfer_encoding::quoted_printable});
    auto encoded = armoured_message;
    encoded.replace(encoded.find("=njUN"), 1, "=3D");
    qp->feed(encoded);
    EXPECT_TRUE(qp->finish());
    auto unencoded = make_body_scanner(
        {encrypted_form::pgp_inline, check::armour, {}, transfer_encoding::quoted_printable});
    unencoded->feed(armoured_message);
    EXPECT_FALSE(unencoded->finish()) << "\"=nj\" is no quoted-printable escape";
}

} // namespace
} // namespace mailseal::seal
