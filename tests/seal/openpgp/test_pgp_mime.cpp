// SPDX-License-Identifier: Apache-2.0
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/seal/encrypted.hpp>
#include <mailseal/seal/openpgp/evaluate.hpp>
#include <mailseal/seal/openpgp/pgp_mime.hpp>

#include "../plaintext.hpp"
#include "test_keys.hpp"

namespace mailseal::seal::openpgp {
namespace {

using seal::test::plaintext_of;

const test::made_key& alice() {
    static const auto k = test::make_key({});
    return k;
}

const test::made_key& bob() {
    static const auto k = [] {
        test::key_spec s;
        s.user_ids = {"Bob <bob@example.org>"};
        s.algorithm = "RSA";
        s.bits = 2048;
        s.subkeys = {test::subkey_spec{"RSA", nullptr, 2048}};
        return test::make_key(s);
    }();
    return k;
}

std::vector<key> keys_of(const test::made_key& k, std::string_view address) {
    key_data d{"test", k.public_key, true};
    return evaluate({d}, {}, address, std::chrono::system_clock::now()).keys;
}

/// The sealed body, written in pieces of `step` bytes.
std::string seal_text(const std::vector<key>& ks, const std::string& plain, std::size_t step,
                      options opts = {}) {
    auto begun = begin_pgp_mime(ks, opts);
    if (auto* problem = std::get_if<std::string>(&begun)) {
        ADD_FAILURE() << *problem;
        return {};
    }
    auto& enc = *std::get<std::unique_ptr<encoder>>(begun);
    std::string out;
    enc.begin(out);
    for (std::size_t i = 0; i < plain.size(); i += step) {
        EXPECT_EQ(enc.write(std::string_view(plain).substr(i, step), out), std::nullopt);
    }
    EXPECT_EQ(enc.finish(out), std::nullopt);
    return out;
}

std::string armour_of(const std::string& body) {
    auto begin = body.find("-----BEGIN PGP MESSAGE-----");
    auto end = body.find("-----END PGP MESSAGE-----");
    if (begin == std::string::npos || end == std::string::npos) {
        return {};
    }
    return body.substr(begin, end + 27 - begin);
}

/// The packet tags of a binary OpenPGP message, and the first octet of each body.
std::vector<std::pair<int, int>> packets_of(const std::string& armour) {
    rnp_input_t raw_in = nullptr;
    rnp_input_from_memory(&raw_in, reinterpret_cast<const std::uint8_t*>(armour.data()),
                          armour.size(), false);
    c_ptr<rnp_input_st> in(raw_in);
    rnp_output_t raw_out = nullptr;
    rnp_output_to_memory(&raw_out, 0);
    c_ptr<rnp_output_st> out(raw_out);
    test::check(rnp_dearmor(in.get(), out.get()), "dearmor");
    std::uint8_t* buf = nullptr;
    std::size_t len = 0;
    rnp_output_memory_get_buf(out.get(), &buf, &len, false);
    std::vector<std::pair<int, int>> tags;
    std::size_t i = 0;
    while (i < len) {
        int header = buf[i++];
        if ((header & 0x40) == 0) {
            ADD_FAILURE() << "old-format packet";
            break;
        }
        int tag = header & 0x3f;
        std::size_t body = 0;
        bool partial = false;
        int first = buf[i];
        if (first < 192) {
            body = static_cast<std::size_t>(first);
            i += 1;
        } else if (first < 224) {
            body = static_cast<std::size_t>(((first - 192) << 8) + buf[i + 1] + 192);
            i += 2;
        } else if (first == 255) {
            body = (std::size_t(buf[i + 1]) << 24) | (std::size_t(buf[i + 2]) << 16) |
                   (std::size_t(buf[i + 3]) << 8) | buf[i + 4];
            i += 5;
        } else {
            partial = true;
        }
        tags.emplace_back(tag, i < len ? buf[i + (partial ? 1 : 0)] : -1);
        if (partial) {
            break; // the encrypted data runs on in partial chunks to the end
        }
        i += body;
    }
    return tags;
}

TEST(pgp_mime, round_trips_in_every_step_size) {
    auto ks = keys_of(alice(), "alice@example.org");
    ASSERT_EQ(ks.size(), 1u);
    for (std::size_t size : {1ul, 100ul, 65535ul, 65536ul, 200000ul}) {
        auto plain = plaintext_of(size);
        for (std::size_t step : {1ul, 57ul, 4096ul, 65536ul}) {
            if (step == 1 && size > 100) {
                continue;
            }
            auto body = seal_text(ks, plain, step);
            auto got = test::decrypt(armour_of(body), alice().secret_key);
            ASSERT_TRUE(got) << "size " << size << " step " << step;
            EXPECT_EQ(*got, plain) << "size " << size << " step " << step;
        }
    }
}

TEST(pgp_mime, layout_is_rfc3156) {
    auto body = seal_text(keys_of(alice(), "alice@example.org"), "Subject: x\r\n\r\nhi\r\n", 7);
    auto boundary_at = body.find("boundary=\"");
    ASSERT_NE(boundary_at, std::string::npos);
    auto boundary =
        body.substr(boundary_at + 10, body.find('"', boundary_at + 10) - boundary_at - 10);
    std::string want_start =
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n"
        " boundary=\"" +
        boundary +
        "\"\r\n\r\n"
        "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
        "--" +
        boundary +
        "\r\nContent-Type: application/pgp-encrypted\r\n"
        "Content-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n--" +
        boundary +
        "\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n"
        "Content-Description: OpenPGP encrypted message\r\n"
        "Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n"
        "-----BEGIN PGP MESSAGE-----\r\n";
    EXPECT_EQ(body.substr(0, want_start.size()), want_start);
    EXPECT_TRUE(body.ends_with("-----END PGP MESSAGE-----\r\n\r\n--" + boundary + "--\r\n"))
        << body.substr(body.size() - 100);
    // Every line of the body is CRLF-terminated and at most 76 characters.
    std::size_t start = 0;
    while (start < body.size()) {
        auto end = body.find("\r\n", start);
        ASSERT_NE(end, std::string::npos);
        EXPECT_LE(end - start, 76u) << body.substr(start, end - start);
        EXPECT_EQ(body.substr(start, end - start).find('\n'), std::string::npos);
        start = end + 2;
    }
}

TEST(pgp_mime, a_sealed_copy_counts_as_already_encrypted) {
    // Real packets from librnp, RSA and Curve25519, small and large (partial lengths).
    for (const auto& [k, address] :
         {std::pair{&alice(), "alice@example.org"}, std::pair{&bob(), "bob@example.org"}}) {
        for (std::size_t size : {10ul, 200000ul}) {
            auto body = seal_text(keys_of(*k, address), plaintext_of(size), 4096);
            auto split = body.find("\r\n\r\n");
            header_scanner scanner(4096);
            std::string rest;
            scanner.feed(body.substr(0, split + 4), rest);
            auto c = classify(scanner.section());
            ASSERT_EQ(c.form, encrypted_form::pgp_mime);
            auto scanner_of_body = make_body_scanner(c);
            scanner_of_body->feed(body.substr(split + 4));
            EXPECT_TRUE(scanner_of_body->finish()) << size;
            armour_scanner inline_form;
            inline_form.feed(armour_of(body));
            EXPECT_TRUE(inline_form.finish()) << size;
        }
    }
}

TEST(pgp_mime, packets_every_reader_opens) {
    auto ks = keys_of(alice(), "alice@example.org");
    auto more = keys_of(bob(), "bob@example.org");
    ks.insert(ks.end(), more.begin(), more.end());
    auto body = seal_text(ks, plaintext_of(100000), 65536);
    auto tags = packets_of(armour_of(body));
    // RFC 4880: a PKESK (tag 1) version 3 per key, then one SEIPD (tag 18) version 1.
    ASSERT_EQ(tags.size(), 3u);
    EXPECT_EQ(tags[0], std::make_pair(1, 3));
    EXPECT_EQ(tags[1], std::make_pair(1, 3));
    EXPECT_EQ(tags[2], std::make_pair(18, 1));
    EXPECT_TRUE(test::decrypt(armour_of(body), alice().secret_key));
    EXPECT_TRUE(test::decrypt(armour_of(body), bob().secret_key));
}

TEST(pgp_mime, cipher_option) {
    auto body = seal_text(keys_of(alice(), "alice@example.org"), "x\r\n", 3,
                          options{symmetric_cipher::aes_128});
    EXPECT_TRUE(test::decrypt(armour_of(body), alice().secret_key));
    auto begun =
        begin_pgp_mime(keys_of(alice(), "alice@example.org"), options{symmetric_cipher::aes_128});
    EXPECT_EQ(std::get<std::unique_ptr<encoder>>(begun)->cipher(), "aes-128");
}

TEST(pgp_mime, abandoned_midway_stops_cleanly) {
    auto plain = plaintext_of(300000);
    for (int i = 0; i < 20; ++i) {
        auto begun = begin_pgp_mime(keys_of(alice(), "alice@example.org"), {});
        auto enc = std::move(std::get<std::unique_ptr<encoder>>(begun));
        std::string out;
        enc->begin(out);
        EXPECT_EQ(enc->write(std::string_view(plain).substr(0, 1000 * i), out), std::nullopt);
        // Destroyed without finish(): the encryption thread must end, not hang.
    }
}

TEST(pgp_mime, refuses_a_key_it_cannot_encrypt_to) {
    // librnp, given a key that cannot encrypt, quietly picks another key of the same
    // transferable key; the encoder must seal to exactly the keys it was given.
    auto given = keys_of(alice(), "alice@example.org");
    ASSERT_EQ(given.size(), 1u);
    auto material = std::make_shared<encryption_key>(*encryption_key_of(given[0]));
    material->fingerprint = alice().fingerprint; // the EdDSA primary: it signs only
    given[0].material = material;
    auto begun = begin_pgp_mime(given, {});
    ASSERT_TRUE(std::holds_alternative<std::string>(begun));
    EXPECT_NE(std::get<std::string>(begun).find("its key flags do not allow encryption"),
              std::string::npos)
        << std::get<std::string>(begun);
}

TEST(pgp_mime, refuses_no_keys_and_other_formats) {
    auto none = begin_pgp_mime({}, {});
    ASSERT_TRUE(std::holds_alternative<std::string>(none));
    key foreign;
    foreign.source = "an S/MIME key";
    auto wrong = begin_pgp_mime({foreign}, {});
    ASSERT_TRUE(std::holds_alternative<std::string>(wrong));
    EXPECT_EQ(std::get<std::string>(wrong), "not an OpenPGP key: an S/MIME key");
}

} // namespace
} // namespace mailseal::seal::openpgp
