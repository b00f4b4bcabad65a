// SPDX-License-Identifier: Apache-2.0
#include "inspect.hpp"

#include <cerrno>
#include <ctime>
#include <fstream>
#include <iterator>

#include <climits>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <mailseal/util/errno_text.hpp>

namespace mailseal::seal::smime::detail {

namespace {

/// i2d functions: the first call measures, the second writes into our own buffer (so nothing
/// OpenSSL allocates needs freeing).
template <typename T, typename Encode>
bytes encode(T& object, Encode encode_fn) {
    int size = encode_fn(&object, nullptr);
    if (size <= 0) {
        return {};
    }
    bytes out(static_cast<std::size_t>(size));
    unsigned char* cursor = out.data();
    if (encode_fn(&object, &cursor) != size) {
        return {};
    }
    return out;
}

std::string bio_text(BIO& bio) {
    char* data = nullptr;
    long size = BIO_get_mem_data(&bio, &data);
    if (size <= 0 || data == nullptr) {
        return {};
    }
    return std::string(data, static_cast<std::size_t>(size));
}

} // namespace

bytes certificate_der(X509& cert) {
    return encode(cert, [](X509* x, unsigned char** out) { return i2d_X509(x, out); });
}

bytes certificate_spki_der(X509& cert) {
    X509_PUBKEY* spki = X509_get_X509_PUBKEY(&cert);
    if (spki == nullptr) {
        return {};
    }
    return encode(*spki,
                  [](X509_PUBKEY* k, unsigned char** out) { return i2d_X509_PUBKEY(k, out); });
}

bytes public_key_der(EVP_PKEY& key) {
    return encode(key, [](EVP_PKEY* k, unsigned char** out) { return i2d_PUBKEY(k, out); });
}

bytes digest(const EVP_MD* md, std::span<const std::uint8_t> data) {
    bytes out(EVP_MAX_MD_SIZE);
    unsigned int size = 0;
    if (EVP_Digest(data.data(), data.size(), out.data(), &size, md, nullptr) != 1) {
        return {};
    }
    out.resize(size);
    return out;
}

namespace {

std::string hex_with(std::span<const std::uint8_t> data, const char (&digits)[17]) {
    std::string out;
    out.reserve(data.size() * 2);
    for (std::uint8_t b : data) {
        out += digits[b >> 4];
        out += digits[b & 0xf];
    }
    return out;
}

} // namespace

std::string hex(std::span<const std::uint8_t> data) {
    return hex_with(data, "0123456789abcdef");
}

std::string upper_hex(std::span<const std::uint8_t> data) {
    return hex_with(data, "0123456789ABCDEF");
}

std::optional<std::time_t> to_time(const ASN1_TIME* t) {
    std::tm tm{};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
        return std::nullopt;
    }
    return ::timegm(&tm);
}

std::string iso_date(std::time_t t) {
    return seal::iso_time(std::chrono::system_clock::from_time_t(t)).substr(0, 10);
}

std::string subject_text(X509& cert) {
    c_ptr<BIO> bio(BIO_new(BIO_s_mem()));
    // RFC 2253 order and escaping, but UTF-8 text left as it is rather than \XX-escaped.
    if (!bio || X509_NAME_print_ex(bio.get(), X509_get_subject_name(&cert), 0,
                                   XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
        return {};
    }
    return bio_text(*bio);
}

std::vector<std::string> san_emails(X509& cert) {
    std::vector<std::string> out;
    c_ptr<GENERAL_NAMES> names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(&cert, NID_subject_alt_name, nullptr, nullptr)));
    if (!names) {
        return out;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
        if (name->type != GEN_EMAIL) {
            continue;
        }
        const ASN1_IA5STRING* email = name->d.rfc822Name;
        out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(email)),
                         static_cast<std::size_t>(ASN1_STRING_length(email)));
    }
    return out;
}

key_class classify(EVP_PKEY& key) {
    key_class out;
    out.bits = EVP_PKEY_get_bits(&key);
    if (EVP_PKEY_is_a(&key, "RSA")) {
        out.description = "RSA " + std::to_string(out.bits);
        if (out.bits < 2048) {
            out.unusable = "RSA " + std::to_string(out.bits) + " bits: below 2048";
        } else {
            out.type = key_type::rsa;
        }
        return out;
    }
    if (EVP_PKEY_is_a(&key, "EC")) {
        char group[80] = {};
        std::size_t length = 0;
        if (EVP_PKEY_get_group_name(&key, group, sizeof group, &length) != 1) {
            out.description = "EC (explicit curve parameters)";
            out.unusable = "EC key with explicit curve parameters: only the named curves P-256 "
                           "and P-384 are accepted";
            return out;
        }
        std::string_view name(group, length);
        if (name == "prime256v1" || name == "P-256") {
            out.description = "EC P-256";
            out.type = key_type::ec_p256;
        } else if (name == "secp384r1" || name == "P-384") {
            out.description = "EC P-384";
            out.type = key_type::ec_p384;
        } else {
            out.description = "EC " + std::string(name);
            out.unusable = "EC curve " + std::string(name) + ": only P-256 and P-384 are accepted";
        }
        return out;
    }
    // RFC 8551 §2.3 lists X25519 (RFC 8418), but OpenSSL 3.0's CMS_add1_recipient_cert() fails
    // with "operation not supported for this keytype" for X25519 and X448.
    for (const char* name : {"X25519", "X448"}) {
        if (EVP_PKEY_is_a(&key, name)) {
            out.description = name;
            out.unusable = std::string(name) + ": OpenSSL 3.0's CMS cannot encrypt to " + name +
                           " keys (operation not supported for this keytype)";
            return out;
        }
    }
    struct signature_only {
        const char* name;
        const char* display;
        bool sized;
    };
    static constexpr signature_only signers[] = {{"ED25519", "Ed25519", false},
                                                 {"ED448", "Ed448", false},
                                                 {"RSA-PSS", "RSA-PSS", true},
                                                 {"DSA", "DSA", true}};
    for (const auto& signer : signers) {
        if (EVP_PKEY_is_a(&key, signer.name)) {
            out.description = signer.display;
            if (signer.sized) {
                out.description += " " + std::to_string(out.bits);
            }
            out.unusable =
                out.description + ": a signature-only key, nothing can be encrypted to it";
            return out;
        }
    }
    const char* type_name = EVP_PKEY_get0_type_name(&key);
    out.description = type_name != nullptr ? type_name : "unknown key type";
    out.unusable = out.description + ": not a key type S/MIME encryption can use";
    return out;
}

namespace {

std::string trailing(std::size_t count) {
    return std::to_string(count) + (count == 1 ? " trailing byte" : " trailing bytes");
}

} // namespace

parsed_certificate parse_certificate_der(std::span<const std::uint8_t> der) {
    parsed_certificate out;
    if (der.size() > static_cast<std::size_t>(LONG_MAX)) {
        out.error = "certificate too large";
        return out;
    }
    const unsigned char* cursor = der.data();
    out.certificate.reset(d2i_X509(nullptr, &cursor, static_cast<long>(der.size())));
    ERR_clear_error();
    if (!out.certificate) {
        out.error = "certificate DER does not parse";
        return out;
    }
    auto used = static_cast<std::size_t>(cursor - der.data());
    if (used != der.size()) {
        out.certificate.reset();
        out.error = "certificate DER followed by " + trailing(der.size() - used);
    }
    return out;
}

parsed_key parse_spki_der(std::span<const std::uint8_t> der) {
    parsed_key out;
    if (der.size() > static_cast<std::size_t>(LONG_MAX)) {
        out.error = "SubjectPublicKeyInfo too large";
        return out;
    }
    const unsigned char* cursor = der.data();
    out.key.reset(d2i_PUBKEY(nullptr, &cursor, static_cast<long>(der.size())));
    ERR_clear_error();
    if (!out.key) {
        out.error = "SubjectPublicKeyInfo DER does not parse";
        return out;
    }
    auto used = static_cast<std::size_t>(cursor - der.data());
    if (used != der.size()) {
        out.key.reset();
        out.error = "SubjectPublicKeyInfo DER followed by " + trailing(der.size() - used);
    }
    return out;
}

namespace {

candidate_report problem(const std::filesystem::path& file, std::string why) {
    candidate_report r;
    r.local = true;
    r.source = "local " + file.string();
    r.why = std::move(why);
    return r;
}

} // namespace

certificate_listing read_pem_file(const std::filesystem::path& file, std::uintmax_t max_size) {
    certificate_listing out;
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        out.problems.push_back(problem(file, "cannot open: " + util::errno_text(errno)));
        return out;
    }
    std::string text;
    char buf[8192];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        text.append(buf, static_cast<std::size_t>(in.gcount()));
        if (text.size() > max_size) {
            out.problems.push_back(
                problem(file, "larger than " + std::to_string(max_size / 1024) + " KiB"));
            return out;
        }
    }
    if (in.bad()) {
        out.problems.push_back(problem(file, "read error"));
        return out;
    }

    c_ptr<BIO> bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    if (!bio) {
        out.problems.push_back(problem(file, "out of memory"));
        return out;
    }
    std::vector<local_certificate> certificates;
    std::vector<candidate_report> notes;
    for (int block = 1;; ++block) {
        char* raw_name = nullptr;
        char* raw_header = nullptr;
        unsigned char* raw_data = nullptr;
        long size = 0;
        int ok = PEM_read_bio(bio.get(), &raw_name, &raw_header, &raw_data, &size);
        c_ptr<char> name(raw_name);
        c_ptr<char> header(raw_header);
        c_ptr<unsigned char> data(raw_data);
        if (ok != 1) {
            unsigned long err = ERR_peek_last_error();
            ERR_clear_error();
            if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
                break; // no further BEGIN line: the end of the file
            }
            out.problems.push_back(
                problem(file, "PEM block " + std::to_string(block) + " does not parse"));
            return out;
        }
        std::string_view label(name.get());
        if (label != PEM_STRING_X509 && label != PEM_STRING_X509_OLD) {
            notes.push_back(problem(file, "PEM block " + std::to_string(block) + " is \"" +
                                              std::string(label) +
                                              "\", not a certificate: ignored"));
            continue;
        }
        auto parsed = parse_certificate_der(
            std::span<const std::uint8_t>(data.get(), static_cast<std::size_t>(size)));
        if (!parsed.certificate) {
            out.problems.push_back(
                problem(file, "PEM block " + std::to_string(block) + ": " + parsed.error));
            return out;
        }
        certificates.push_back({share(std::move(parsed.certificate)), file});
    }
    if (certificates.empty()) {
        notes.push_back(problem(file, "no PEM certificate"));
    }
    out.certificates = std::move(certificates);
    out.problems = std::move(notes);
    return out;
}

} // namespace mailseal::seal::smime::detail
