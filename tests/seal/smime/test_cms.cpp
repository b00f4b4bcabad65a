// SPDX-License-Identifier: Apache-2.0
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <mailseal/seal/smime/cms.hpp>

#include "../decrypt.hpp"
#include "../plaintext.hpp"
#include "test_certs.hpp"

namespace mailseal::seal::smime {
namespace {

namespace kt = smime::test;
using seal::test::plaintext_of;

key rsa_key(std::shared_ptr<X509> cert, std::shared_ptr<EVP_PKEY> pkey) {
    return kt::make_key(pkey, cert, key_type::rsa, 2048, "test");
}

/// Encrypts `plain` in pieces of `step` bytes and returns the base64 text.
std::string seal_text(const std::vector<key>& ks, content_cipher cipher, rsa_padding padding,
                      const std::string& plain, std::size_t step,
                      std::string_view line_end = "\r\n") {
    auto begun = cms_encoder::begin(ks, options{cipher, padding}, line_end);
    if (auto* problem = std::get_if<std::string>(&begun)) {
        ADD_FAILURE() << *problem;
        return {};
    }
    auto& enc = std::get<cms_encoder>(begun);
    std::string out;
    for (std::size_t i = 0; i < plain.size(); i += step) {
        EXPECT_EQ(enc.write(std::string_view(plain).substr(i, step), out), std::nullopt);
    }
    EXPECT_EQ(enc.finish(out), std::nullopt);
    return out;
}

/// Every line of `text` 76 characters of base64 (the last one at most that), then `line_end`.
void expect_76_column_lines(const std::string& text, std::string_view line_end = "\r\n") {
    std::size_t start = 0;
    std::size_t lines = 0;
    while (start < text.size()) {
        auto end = text.find(line_end, start);
        ASSERT_NE(end, std::string::npos) << "unterminated last line";
        bool last = end + line_end.size() == text.size();
        if (!last) {
            ASSERT_EQ(end - start, 76u) << "line " << lines;
        } else {
            ASSERT_LE(end - start, 76u);
        }
        ASSERT_EQ(text.substr(start, end - start).find_first_of("\r\n"), std::string::npos)
            << "line " << lines;
        start = end + line_end.size();
        ++lines;
    }
}

TEST(cms_encoder, round_trips_every_cipher_and_key_form) {
    const auto& c = kt::certs();
    struct row {
        const char* name;
        std::vector<key> keys;
        content_cipher cipher;
        rsa_padding padding;
        std::shared_ptr<EVP_PKEY> private_key;
        std::shared_ptr<X509> certificate; ///< null: try every RecipientInfo
        int content_nid;
    };
    auto rsa = rsa_key(c.rsa, c.rsa_key);
    key ec = kt::make_key(c.ec_key, c.ec_agree, key_type::ec_p256, 256, "ec");
    key ec384 = kt::make_key(c.ec384_key, c.ec384, key_type::ec_p384, 384, "ec384");
    key bare_rsa = kt::make_key(c.rsa_key2, nullptr, key_type::rsa, 2048, "spki");
    key bare_ec = kt::make_key(c.ec_key2, nullptr, key_type::ec_p256, 256, "spki-ec");
    using cc = content_cipher;
    using rp = rsa_padding;
    std::vector<row> rows = {
        {"rsa_cbc256", {rsa}, cc::aes_256_cbc, rp::pkcs1, c.rsa_key, c.rsa, NID_pkcs7_enveloped},
        {"rsa_cbc128", {rsa}, cc::aes_128_cbc, rp::pkcs1, c.rsa_key, c.rsa, NID_pkcs7_enveloped},
        {"rsa_gcm256",
         {rsa},
         cc::aes_256_gcm,
         rp::pkcs1,
         c.rsa_key,
         c.rsa,
         NID_id_smime_ct_authEnvelopedData},
        {"rsa_gcm128",
         {rsa},
         cc::aes_128_gcm,
         rp::pkcs1,
         c.rsa_key,
         c.rsa,
         NID_id_smime_ct_authEnvelopedData},
        {"rsa_oaep", {rsa}, cc::aes_256_cbc, rp::oaep, c.rsa_key, c.rsa, NID_pkcs7_enveloped},
        {"ec_p256", {ec}, cc::aes_256_cbc, rp::pkcs1, c.ec_key, c.ec_agree, NID_pkcs7_enveloped},
        {"ec_p384_gcm",
         {ec384},
         cc::aes_256_gcm,
         rp::pkcs1,
         c.ec384_key,
         c.ec384,
         NID_id_smime_ct_authEnvelopedData},
        {"bare_rsa_key",
         {bare_rsa},
         cc::aes_256_cbc,
         rp::pkcs1,
         c.rsa_key2,
         nullptr,
         NID_pkcs7_enveloped},
        {"bare_ec_key",
         {bare_ec},
         cc::aes_256_cbc,
         rp::pkcs1,
         c.ec_key2,
         nullptr,
         NID_pkcs7_enveloped},
        {"second_of_two",
         {rsa, bare_rsa},
         cc::aes_256_cbc,
         rp::pkcs1,
         c.rsa_key2,
         nullptr,
         NID_pkcs7_enveloped},
    };
    // Sizes around the 64 KiB chunk and the 57-octet base64 group.
    for (std::size_t size : {1u, 57u, 65536u, 65537u, 300000u}) {
        auto plain = plaintext_of(size);
        for (const auto& r : rows) {
            auto text = seal_text(r.keys, r.cipher, r.padding, plain, 1000);
            expect_76_column_lines(text);
            auto cms = seal::test::parse_base64_cms(text);
            ASSERT_TRUE(cms) << r.name;
            EXPECT_EQ(OBJ_obj2nid(CMS_get0_type(cms.get())), r.content_nid) << r.name;
            EXPECT_EQ(sk_CMS_RecipientInfo_num(CMS_get0_RecipientInfos(cms.get())),
                      static_cast<int>(r.keys.size()))
                << r.name;
            auto got = seal::test::decrypt(*cms, *r.private_key, r.certificate.get());
            ASSERT_TRUE(got) << r.name << " size " << size << ": " << seal::test::openssl_errors();
            EXPECT_TRUE(*got == plain) << r.name << " size " << size;
        }
    }
}

TEST(cms_encoder, default_form_round_trips_any_split) {
    // Writes below and above the 16 KiB that go to the cipher without staging, around the
    // 16-octet block and the 64 KiB chunk, for both recipient identifiers.
    const auto& c = kt::certs();
    auto plain = plaintext_of(200003);
    for (std::size_t step : {1u, 15u, 16u, 17u, 16383u, 16384u, 16399u, 65536u, 70001u}) {
        auto text = seal_text({rsa_key(c.rsa, c.rsa_key),
                               kt::make_key(c.rsa_key2, nullptr, key_type::rsa, 2048, "spki")},
                              content_cipher::aes_256_cbc, rsa_padding::pkcs1, plain, step);
        expect_76_column_lines(text);
        auto cms = seal::test::parse_base64_cms(text);
        ASSERT_TRUE(cms) << "step " << step;
        auto by_certificate = seal::test::decrypt(*cms, *c.rsa_key, c.rsa.get());
        ASSERT_TRUE(by_certificate) << "step " << step << ": " << seal::test::openssl_errors();
        EXPECT_TRUE(*by_certificate == plain) << "step " << step;
        auto by_key = seal::test::decrypt(*cms, *c.rsa_key2, nullptr);
        ASSERT_TRUE(by_key) << "step " << step << ": " << seal::test::openssl_errors();
        EXPECT_TRUE(*by_key == plain) << "step " << step;
    }
}

TEST(cms_encoder, lines_end_in_lf_for_a_copy_stored_with_lf) {
    // Both ways of writing the CMS, so a Maildir copy's lines need no conversion.
    const auto& c = kt::certs();
    auto plain = plaintext_of(150001);
    for (auto cipher : {content_cipher::aes_256_cbc, content_cipher::aes_256_gcm}) {
        auto text =
            seal_text({rsa_key(c.rsa, c.rsa_key)}, cipher, rsa_padding::pkcs1, plain, 70001, "\n");
        expect_76_column_lines(text, "\n");
        auto cms = seal::test::parse_base64_cms(text);
        ASSERT_TRUE(cms);
        auto got = seal::test::decrypt(*cms, *c.rsa_key, c.rsa.get());
        ASSERT_TRUE(got) << seal::test::openssl_errors();
        EXPECT_TRUE(*got == plain);
    }
}

TEST(cms_encoder, a_key_that_cannot_be_named_is_an_error) {
    // A bare key whose SubjectPublicKeyInfo is missing cannot get a subjectKeyIdentifier.
    auto material = std::make_shared<certificate_key>();
    material->public_key = kt::certs().rsa_key2;
    material->type = key_type::rsa;
    key broken;
    broken.material = material;
    broken.source = "broken";
    auto begun = cms_encoder::begin({broken}, options{});
    ASSERT_TRUE(std::holds_alternative<std::string>(begun));
    EXPECT_TRUE(std::get<std::string>(begun).starts_with("adding the recipient broken"))
        << std::get<std::string>(begun);
}

TEST(cms_encoder, key_parameters_follow_rfc8551) {
    const auto& c = kt::certs();
    auto print = [](const std::string& text) {
        auto cms = seal::test::parse_base64_cms(text);
        c_ptr<BIO> out(BIO_new(BIO_s_mem()));
        CMS_ContentInfo_print_ctx(out.get(), cms.get(), 0, nullptr);
        char* data = nullptr;
        long n = BIO_get_mem_data(out.get(), &data);
        return std::string(data, static_cast<std::size_t>(n));
    };
    auto oaep = print(seal_text({rsa_key(c.rsa, c.rsa_key)}, content_cipher::aes_256_cbc,
                                rsa_padding::oaep, "x", 1));
    EXPECT_NE(oaep.find("rsaesOaep"), std::string::npos) << oaep;
    EXPECT_NE(oaep.find("sha256"), std::string::npos) << oaep;
    auto ec = print(seal_text({kt::make_key(c.ec_key, c.ec_agree, key_type::ec_p256, 256, "ec")},
                              content_cipher::aes_256_cbc, rsa_padding::pkcs1, "x", 1));
    EXPECT_NE(ec.find("dhSinglePass-stdDH-sha256kdf-scheme"), std::string::npos) << ec;
    EXPECT_NE(ec.find("id-aes256-wrap"), std::string::npos) << ec;
    auto bare = print(seal_text({kt::make_key(c.rsa_key2, nullptr, key_type::rsa, 2048, "spki")},
                                content_cipher::aes_256_cbc, rsa_padding::pkcs1, "x", 1));
    EXPECT_NE(bare.find("subjectKeyIdentifier"), std::string::npos) << bare;
}

/// CMS_ContentInfo_print_ctx's text without the lines that show random octets (hex dumps of
/// the IV, the encrypted key and the content), which differ from one encryption to the next.
std::string structure_of(CMS_ContentInfo& cms) {
    c_ptr<BIO> out(BIO_new(BIO_s_mem()));
    CMS_ContentInfo_print_ctx(out.get(), &cms, 0, nullptr);
    char* data = nullptr;
    long n = BIO_get_mem_data(out.get(), &data);
    std::string printed(data, static_cast<std::size_t>(n));
    std::string kept;
    std::size_t start = 0;
    while (start < printed.size()) {
        auto end = printed.find('\n', start);
        end = end == std::string::npos ? printed.size() : end + 1;
        std::string_view line(printed.data() + start, end - start);
        auto dash = line.find(" - ");
        bool hex_dump = dash != std::string_view::npos && dash >= 4 &&
                        line.substr(dash - 4, 4).find_first_not_of("0123456789abcdef") ==
                            std::string_view::npos;
        if (!hex_dump) {
            kept += line;
        }
        start = end;
    }
    return kept;
}

TEST(cms_encoder, default_form_is_the_enveloped_data_openssl_writes) {
    const auto& c = kt::certs();
    for (auto cipher : {content_cipher::aes_256_cbc, content_cipher::aes_128_cbc}) {
        auto ours = seal::test::parse_base64_cms(
            seal_text({rsa_key(c.rsa, c.rsa_key)}, cipher, rsa_padding::pkcs1, "hello", 5));
        ASSERT_TRUE(ours);
        c_ptr<STACK_OF(X509)> recipients(sk_X509_new_null());
        ASSERT_EQ(X509_up_ref(c.rsa.get()), 1);
        ASSERT_GT(sk_X509_push(recipients.get(), c.rsa.get()), 0);
        c_ptr<BIO> in(BIO_new_mem_buf("hello", 5));
        c_ptr<CMS_ContentInfo> theirs(CMS_encrypt(
            recipients.get(), in.get(),
            cipher == content_cipher::aes_128_cbc ? EVP_aes_128_cbc() : EVP_aes_256_cbc(),
            CMS_BINARY));
        ASSERT_TRUE(theirs) << seal::test::openssl_errors();
        EXPECT_EQ(structure_of(*ours), structure_of(*theirs));
        EXPECT_NE(structure_of(*ours).find("version: 0"), std::string::npos) << structure_of(*ours);
    }
}

TEST(cms_encoder, names_each_recipient_as_rfc5652_says) {
    const auto& c = kt::certs();
    auto cms = seal::test::parse_base64_cms(seal_text(
        {rsa_key(c.rsa, c.rsa_key), kt::make_key(c.rsa_key2, nullptr, key_type::rsa, 2048, "spki")},
        content_cipher::aes_256_cbc, rsa_padding::pkcs1, "hello", 5));
    ASSERT_TRUE(cms);
    // RFC 5280 §4.2.1.2 method 1, computed here from the key's own encoding.
    c_ptr<X509_PUBKEY> spki(nullptr);
    {
        X509_PUBKEY* made = nullptr;
        ASSERT_EQ(X509_PUBKEY_set(&made, c.rsa_key2.get()), 1);
        spki.reset(made);
    }
    const unsigned char* bits = nullptr;
    int bits_length = 0;
    ASSERT_EQ(X509_PUBKEY_get0_param(nullptr, &bits, &bits_length, nullptr, spki.get()), 1);
    unsigned char expected[EVP_MAX_MD_SIZE];
    unsigned int expected_length = 0;
    ASSERT_EQ(EVP_Digest(bits, static_cast<std::size_t>(bits_length), expected, &expected_length,
                         EVP_sha1(), nullptr),
              1);

    auto* infos = CMS_get0_RecipientInfos(cms.get());
    ASSERT_EQ(sk_CMS_RecipientInfo_num(infos), 2);
    int by_certificate = 0;
    int by_key_identifier = 0;
    for (int i = 0; i < 2; ++i) {
        CMS_RecipientInfo* ri = sk_CMS_RecipientInfo_value(infos, i);
        ASSERT_EQ(CMS_RecipientInfo_type(ri), CMS_RECIPINFO_TRANS);
        ASN1_OCTET_STRING* key_id = nullptr;
        X509_NAME* issuer = nullptr;
        ASN1_INTEGER* serial = nullptr;
        ASSERT_EQ(CMS_RecipientInfo_ktri_get0_signer_id(ri, &key_id, &issuer, &serial), 1);
        if (key_id != nullptr) {
            ++by_key_identifier;
            EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(key_id)),
                                       static_cast<std::size_t>(ASN1_STRING_length(key_id))),
                      std::string_view(reinterpret_cast<const char*>(expected), expected_length));
        } else {
            ++by_certificate;
            EXPECT_EQ(CMS_RecipientInfo_ktri_cert_cmp(ri, c.rsa.get()), 0);
        }
    }
    EXPECT_EQ(by_certificate, 1);
    EXPECT_EQ(by_key_identifier, 1);
    // A subjectKeyIdentifier makes its RecipientInfo, and so the EnvelopedData, version 2.
    auto printed = structure_of(*cms);
    EXPECT_NE(printed.find("d.envelopedData: \n    version: 2\n"), std::string::npos) << printed;
    auto plain = seal::test::decrypt(*cms, *c.rsa_key2, nullptr);
    ASSERT_TRUE(plain);
    EXPECT_EQ(*plain, "hello");
    plain = seal::test::decrypt(*cms, *c.rsa_key, c.rsa.get());
    ASSERT_TRUE(plain);
    EXPECT_EQ(*plain, "hello");
}

TEST(cms_encoder, refuses_no_keys_and_empty_content) {
    auto begun = cms_encoder::begin({}, options{});
    ASSERT_TRUE(std::holds_alternative<std::string>(begun));
    key foreign;
    foreign.source = "another format's key";
    auto wrong = cms_encoder::begin({foreign}, options{});
    ASSERT_TRUE(std::holds_alternative<std::string>(wrong));
    EXPECT_EQ(std::get<std::string>(wrong), "not an S/MIME key: another format's key");
    auto empty = cms_encoder::begin({rsa_key(kt::certs().rsa, kt::certs().rsa_key)}, options{});
    ASSERT_TRUE(std::holds_alternative<cms_encoder>(empty));
    std::string out;
    EXPECT_EQ(std::get<cms_encoder>(empty).finish(out), "no content to encrypt");
}

} // namespace
} // namespace mailseal::seal::smime
