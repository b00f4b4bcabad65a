// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Test-side decryption with the OpenSSL API: base64 text (as the encoder writes it) to a
/// CMS object, and a CMS object to its plaintext.

#include <optional>
#include <string>

#include <openssl/cms.h>
#include <openssl/err.h>

#include <mailseal/seal/smime/openssl.hpp>

namespace mailseal::seal::test {

inline smime::c_ptr<CMS_ContentInfo> parse_base64_cms(const std::string& base64_lines) {
    smime::c_ptr<BIO> chain(BIO_new(BIO_f_base64()));
    BIO_push(chain.get(),
             BIO_new_mem_buf(base64_lines.data(), static_cast<int>(base64_lines.size())));
    return smime::c_ptr<CMS_ContentInfo>(d2i_CMS_bio(chain.get(), nullptr));
}

/// Decrypts with `key`; `cert` names the RecipientInfo, or null to try each one.
inline std::optional<std::string> decrypt(CMS_ContentInfo& cms, EVP_PKEY& key, X509* cert) {
    smime::c_ptr<BIO> out(BIO_new(BIO_s_mem()));
    if (CMS_decrypt(&cms, &key, cert, nullptr, out.get(), CMS_BINARY) != 1) {
        return std::nullopt;
    }
    char* data = nullptr;
    long n = BIO_get_mem_data(out.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

inline std::string openssl_errors() {
    std::string out;
    while (unsigned long code = ERR_get_error()) {
        char text[256];
        ERR_error_string_n(code, text, sizeof text);
        out += text;
        out += "; ";
    }
    return out;
}

} // namespace mailseal::seal::test
