// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Certificates made at test time with the OpenSSL API, once per test process, for fixed RSA keys
/// (test_keys.hpp) and fresh EC, Ed25519 and X25519 ones, which take microseconds to make.

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <stdlib.h>
#include <string>
#include <system_error>
#include <vector>

#include <openssl/pem.h>

#include <mailseal/seal/smime/evaluate.hpp>
#include <mailseal/seal/smime/openssl.hpp>

#include "test_keys.hpp"

namespace mailseal::seal::smime::test {

inline std::time_t utc(int year, int month, int day) {
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    return ::timegm(&tm);
}

/// "Now" in every test: inside the default validity window below.
inline const std::time_t test_now = utc(2026, 6, 1);

/// A fresh key of `type` ("EC" with a `group`, "ED25519", "X25519"); RSA keys are fixed.
inline std::shared_ptr<EVP_PKEY> generate(const char* type, const char* group = nullptr) {
    c_ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        (group != nullptr && EVP_PKEY_CTX_set_group_name(ctx.get(), group) != 1)) {
        throw std::runtime_error(std::string("key generation setup failed: ") + type);
    }
    EVP_PKEY* key = nullptr;
    if (EVP_PKEY_generate(ctx.get(), &key) != 1) {
        throw std::runtime_error(std::string("key generation failed: ") + type);
    }
    return share(c_ptr<EVP_PKEY>(key));
}

struct cert_spec {
    std::shared_ptr<EVP_PKEY> key{}; ///< the subject's key
    std::string common_name = "Alice";
    /// rfc822Name subjectAltNames; empty: no subjectAltName extension.
    std::vector<std::string> emails = {"alice@example.org"};
    /// dNSName subjectAltNames (a server's).
    std::vector<std::string> dns_names{};
    /// keyUsage extension value in openssl.cnf syntax; empty: no keyUsage extension.
    std::string key_usage{};
    std::string ext_key_usage{};
    std::time_t not_before = utc(2025, 1, 1);
    std::time_t not_after = utc(2030, 1, 1);
    bool ca = false;
    /// The issuing CA (null: issued by itself) and the signing key (null: the subject's key,
    /// which must then be able to sign).
    std::shared_ptr<X509> issuer{};
    std::shared_ptr<EVP_PKEY> signer{};
    long serial = 1;
};

inline void add_extension(X509& cert, X509V3_CTX& ctx, int nid, const std::string& value) {
    c_ptr<X509_EXTENSION> ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
    if (!ext || X509_add_ext(&cert, ext.get(), -1) != 1) {
        throw std::runtime_error("extension failed: " + value);
    }
}

inline std::shared_ptr<X509> make_cert(const cert_spec& spec) {
    c_ptr<X509> cert(X509_new());
    X509_set_version(cert.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), spec.serial);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1,
                               -1, 0);
    X509_set_issuer_name(cert.get(), spec.issuer ? X509_get_subject_name(spec.issuer.get()) : name);
    ASN1_TIME_set(X509_getm_notBefore(cert.get()), spec.not_before);
    ASN1_TIME_set(X509_getm_notAfter(cert.get()), spec.not_after);
    X509_set_pubkey(cert.get(), spec.key.get());

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, spec.issuer ? spec.issuer.get() : cert.get(), cert.get(), nullptr, nullptr,
                   0);
    add_extension(*cert, ctx, NID_subject_key_identifier, "hash");
    if (spec.ca) {
        add_extension(*cert, ctx, NID_basic_constraints, "critical,CA:TRUE");
        add_extension(*cert, ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    if (!spec.key_usage.empty()) {
        add_extension(*cert, ctx, NID_key_usage, spec.key_usage);
    }
    if (!spec.ext_key_usage.empty()) {
        add_extension(*cert, ctx, NID_ext_key_usage, spec.ext_key_usage);
    }
    if (!spec.emails.empty() || !spec.dns_names.empty()) {
        std::string san;
        for (const auto& e : spec.emails) {
            san += (san.empty() ? "email:" : ",email:") + e;
        }
        for (const auto& d : spec.dns_names) {
            san += (san.empty() ? "DNS:" : ",DNS:") + d;
        }
        add_extension(*cert, ctx, NID_subject_alt_name, san);
    }
    EVP_PKEY* signer = spec.signer ? spec.signer.get() : spec.key.get();
    // Ed25519 signs without a separate digest.
    const EVP_MD* md = EVP_PKEY_is_a(signer, "ED25519") ? nullptr : EVP_sha256();
    if (X509_sign(cert.get(), signer, md) <= 0) {
        throw std::runtime_error("signing failed for " + spec.common_name);
    }
    return share(std::move(cert));
}

inline std::vector<std::uint8_t> der(X509& cert) {
    int size = i2d_X509(&cert, nullptr);
    std::vector<std::uint8_t> out(static_cast<std::size_t>(size));
    unsigned char* cursor = out.data();
    i2d_X509(&cert, &cursor);
    return out;
}

inline std::vector<std::uint8_t> spki(X509& cert) {
    int size = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(&cert), nullptr);
    std::vector<std::uint8_t> out(static_cast<std::size_t>(size));
    unsigned char* cursor = out.data();
    i2d_X509_PUBKEY(X509_get_X509_PUBKEY(&cert), &cursor);
    return out;
}

inline std::string pem(X509& cert) {
    c_ptr<BIO> bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), &cert);
    char* data = nullptr;
    long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

inline std::string private_key_pem(EVP_PKEY& key) {
    c_ptr<BIO> bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_PrivateKey(bio.get(), &key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

/// Every certificate the tests use, made once.
struct fixtures {
    std::shared_ptr<EVP_PKEY> rsa_key = fixed_key(rsa2048_first_pem);
    std::shared_ptr<EVP_PKEY> rsa_key2 = fixed_key(rsa2048_second_pem);
    std::shared_ptr<EVP_PKEY> rsa_weak_key = fixed_key(rsa1024_pem);
    std::shared_ptr<EVP_PKEY> ec_key = generate("EC", "P-256");
    std::shared_ptr<EVP_PKEY> ec_key2 = generate("EC", "P-256");
    std::shared_ptr<EVP_PKEY> ec384_key = generate("EC", "P-384");
    std::shared_ptr<EVP_PKEY> ed_key = generate("ED25519");
    std::shared_ptr<EVP_PKEY> x_key = generate("X25519");
    std::shared_ptr<EVP_PKEY> ca_key = generate("EC", "P-256");
    std::shared_ptr<EVP_PKEY> other_ca_key = generate("EC", "P-256");

    std::shared_ptr<X509> rsa = make_cert({.key = rsa_key,
                                           .key_usage = "digitalSignature,keyEncipherment",
                                           .ext_key_usage = "emailProtection"});
    /// The same key as `rsa` in another certificate (a renewal).
    std::shared_ptr<X509> rsa_renewed =
        make_cert({.key = rsa_key, .key_usage = "keyEncipherment", .serial = 2});
    /// A second RSA key, no keyUsage extension at all.
    std::shared_ptr<X509> rsa2 = make_cert({.key = rsa_key2, .serial = 3});
    std::shared_ptr<X509> rsa_weak =
        make_cert({.key = rsa_weak_key, .key_usage = "keyEncipherment"});
    std::shared_ptr<X509> rsa_sign_only =
        make_cert({.key = rsa_key2, .key_usage = "digitalSignature", .serial = 4});
    std::shared_ptr<X509> ec_agree = make_cert({.key = ec_key, .key_usage = "keyAgreement"});
    std::shared_ptr<X509> ec_sign_only =
        make_cert({.key = ec_key2, .key_usage = "digitalSignature"});
    std::shared_ptr<X509> ec384 = make_cert({.key = ec384_key});
    std::shared_ptr<X509> ed25519 = make_cert({.key = ed_key});
    std::shared_ptr<X509> x25519 =
        make_cert({.key = x_key, .key_usage = "keyAgreement", .signer = ca_key});
    std::shared_ptr<X509> expired =
        make_cert({.key = rsa_key2, .not_before = utc(2020, 1, 1), .not_after = utc(2025, 1, 1)});
    std::shared_ptr<X509> not_yet_valid =
        make_cert({.key = rsa_key2, .not_before = utc(2027, 1, 1)});
    std::shared_ptr<X509> wrong_san = make_cert({.key = rsa_key2, .emails = {"bob@example.org"}});
    std::shared_ptr<X509> no_san = make_cert({.key = rsa_key2, .emails = {}});
    std::shared_ptr<X509> san_domain_case =
        make_cert({.key = rsa_key2, .emails = {"bob@example.org", "alice@EXAMPLE.Org"}});
    std::shared_ptr<X509> san_local_case =
        make_cert({.key = rsa_key2, .emails = {"Alice@example.org"}});
    std::shared_ptr<X509> eku_server = make_cert({.key = rsa_key2, .ext_key_usage = "serverAuth"});

    std::shared_ptr<X509> ca =
        make_cert({.key = ca_key, .common_name = "Test S/MIME CA", .emails = {}, .ca = true});
    std::shared_ptr<X509> other_ca =
        make_cert({.key = other_ca_key, .common_name = "Other CA", .emails = {}, .ca = true});
    std::shared_ptr<X509> pkix_rsa = make_cert({.key = rsa_key2,
                                                .key_usage = "keyEncipherment",
                                                .ext_key_usage = "emailProtection",
                                                .issuer = ca,
                                                .signer = ca_key,
                                                .serial = 10});
    /// keyAgreement only: OpenSSL's smimeencrypt purpose would wrongly reject it.
    std::shared_ptr<X509> pkix_ec = make_cert({.key = ec_key,
                                               .key_usage = "critical,keyAgreement",
                                               .ext_key_usage = "emailProtection",
                                               .issuer = ca,
                                               .signer = ca_key,
                                               .serial = 11});
    std::shared_ptr<X509> pkix_other_ca =
        make_cert({.key = rsa_key2, .issuer = other_ca, .signer = other_ca_key, .serial = 12});
    std::shared_ptr<X509> pkix_expired = make_cert({.key = rsa_key2,
                                                    .not_before = utc(2020, 1, 1),
                                                    .not_after = utc(2025, 1, 1),
                                                    .issuer = ca,
                                                    .signer = ca_key,
                                                    .serial = 13});
    std::shared_ptr<X509> pkix_wrong_san = make_cert({.key = rsa_key2,
                                                      .emails = {"bob@example.org"},
                                                      .issuer = ca,
                                                      .signer = ca_key,
                                                      .serial = 14});
    std::shared_ptr<X509> pkix_eku_server = make_cert({.key = rsa_key2,
                                                       .ext_key_usage = "serverAuth",
                                                       .issuer = ca,
                                                       .signer = ca_key,
                                                       .serial = 15});
};

/// A fresh directory under $TMPDIR, removed with everything in it at the end of the test.
class temp_dir {
public:
    temp_dir() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "mailseal-keys-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = pattern;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

inline const fixtures& certs() {
    static const fixtures f;
    return f;
}

/// A key as the S/MIME evaluation makes one, for tests that seal without evaluating.
inline key make_key(std::shared_ptr<EVP_PKEY> public_key, std::shared_ptr<X509> certificate,
                    key_type type, int bits, std::string source) {
    auto material = std::make_shared<certificate_key>();
    material->public_key = std::move(public_key);
    material->certificate = std::move(certificate);
    material->type = type;
    // As evaluate() makes it: the key's DER SubjectPublicKeyInfo goes with it.
    int length = i2d_PUBKEY(material->public_key.get(), nullptr);
    if (length <= 0) {
        throw std::runtime_error("test key does not encode");
    }
    material->spki_der.resize(static_cast<std::size_t>(length));
    unsigned char* write = material->spki_der.data();
    i2d_PUBKEY(material->public_key.get(), &write);
    key k;
    k.material = std::move(material);
    k.source = std::move(source);
    k.algorithm = std::string(to_string(type));
    k.bits = bits;
    return k;
}

} // namespace mailseal::seal::smime::test
