// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Ownership of OpenSSL handles. Every OpenSSL object mailseal holds lives in a `c_ptr<T>` (sole
/// owner) or a `std::shared_ptr<T>` made from one (shared, read-only after construction: OpenSSL
/// 3.0 allows X509 and EVP_PKEY to be read from several threads at once). Each type's free
/// function is named once, here, so no other file calls one.

#include <memory>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

namespace mailseal::seal::smime {

/// The free function of an OpenSSL type; specialised once per type below.
template <typename T>
struct deleter;

template <>
struct deleter<X509> {
    void operator()(X509* p) const noexcept { X509_free(p); }
};
template <>
struct deleter<EVP_PKEY> {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
template <>
struct deleter<EVP_PKEY_CTX> {
    void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); }
};
template <>
struct deleter<EVP_CIPHER> {
    void operator()(EVP_CIPHER* p) const noexcept { EVP_CIPHER_free(p); }
};
/// EVP_CIPHER_CTX_free also clears the key schedule.
template <>
struct deleter<EVP_CIPHER_CTX> {
    void operator()(EVP_CIPHER_CTX* p) const noexcept { EVP_CIPHER_CTX_free(p); }
};
template <>
struct deleter<X509_PUBKEY> {
    void operator()(X509_PUBKEY* p) const noexcept { X509_PUBKEY_free(p); }
};
template <>
struct deleter<EVP_MD_CTX> {
    void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
/// BIO_free_all: a chain is owned through its head, as BIO_push() arranges.
template <>
struct deleter<BIO> {
    void operator()(BIO* p) const noexcept { BIO_free_all(p); }
};
template <>
struct deleter<BIO_METHOD> {
    void operator()(BIO_METHOD* p) const noexcept { BIO_meth_free(p); }
};
template <>
struct deleter<X509_STORE> {
    void operator()(X509_STORE* p) const noexcept { X509_STORE_free(p); }
};
template <>
struct deleter<X509_STORE_CTX> {
    void operator()(X509_STORE_CTX* p) const noexcept { X509_STORE_CTX_free(p); }
};
template <>
struct deleter<X509_EXTENSION> {
    void operator()(X509_EXTENSION* p) const noexcept { X509_EXTENSION_free(p); }
};
/// A stack of certificates owns its elements.
template <>
struct deleter<STACK_OF(X509)> {
    void operator()(STACK_OF(X509) * p) const noexcept { sk_X509_pop_free(p, X509_free); }
};
template <>
struct deleter<CMS_ContentInfo> {
    void operator()(CMS_ContentInfo* p) const noexcept { CMS_ContentInfo_free(p); }
};
template <>
struct deleter<ASN1_OCTET_STRING> {
    void operator()(ASN1_OCTET_STRING* p) const noexcept { ASN1_OCTET_STRING_free(p); }
};
/// GENERAL_NAMES is STACK_OF(GENERAL_NAME); its free function frees the elements too.
template <>
struct deleter<GENERAL_NAMES> {
    void operator()(GENERAL_NAMES* p) const noexcept { GENERAL_NAMES_free(p); }
};
/// Buffers OpenSSL allocates for its caller (PEM_read_bio names and data, i2d output).
template <>
struct deleter<unsigned char> {
    void operator()(unsigned char* p) const noexcept { OPENSSL_free(p); }
};
template <>
struct deleter<char> {
    void operator()(char* p) const noexcept { OPENSSL_free(p); }
};

/// Sole ownership of an OpenSSL object.
template <typename T>
using c_ptr = std::unique_ptr<T, deleter<T>>;

/// Shared ownership taken over from a c_ptr (the deleter moves along).
template <typename T>
std::shared_ptr<T> share(c_ptr<T> p) {
    return std::shared_ptr<T>(std::move(p));
}

/// Shared ownership of an object someone else also holds: takes a reference of its own.
inline std::shared_ptr<X509> share_borrowed(X509* p) {
    if (p == nullptr || X509_up_ref(p) != 1) {
        return nullptr;
    }
    return share(c_ptr<X509>(p));
}
inline std::shared_ptr<EVP_PKEY> share_borrowed(EVP_PKEY* p) {
    if (p == nullptr || EVP_PKEY_up_ref(p) != 1) {
        return nullptr;
    }
    return share(c_ptr<EVP_PKEY>(p));
}

} // namespace mailseal::seal::smime
