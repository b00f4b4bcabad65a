// SPDX-License-Identifier: Apache-2.0
#include <mutex>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include <mailseal/seal/smime/base64.hpp>
#include <mailseal/seal/smime/cms.hpp>
#include <mailseal/seal/smime/evaluate.hpp>
#include <mailseal/seal/smime/openssl.hpp>
#include <mailseal/util/wipe.hpp>

namespace mailseal::seal::smime {
namespace {

/// Plaintext handed to OpenSSL at a time: each write becomes OCTET STRINGs of the
/// indefinite-length content (of at most 4 KiB, the cipher BIO's block), so tiny writes would
/// bloat the output; they are gathered into chunks. A write of at least direct_minimum octets
/// goes to OpenSSL as it is.
constexpr std::size_t chunk_size = 64 * 1024;
constexpr std::size_t direct_minimum = 16 * 1024;
/// RFC 2045 §6.8: at most 76 characters per base64 line; 57 octets make exactly 76.
constexpr std::size_t base64_group = 57;

std::string openssl_error(std::string_view what) {
    std::string out(what);
    while (unsigned long code = ERR_get_error()) {
        char text[256];
        ERR_error_string_n(code, text, sizeof text);
        out += "; ";
        out += text;
    }
    return out;
}

const EVP_CIPHER* cipher_for(content_cipher c) {
    switch (c) {
    case content_cipher::aes_256_cbc:
        return EVP_aes_256_cbc();
    case content_cipher::aes_128_cbc:
        return EVP_aes_128_cbc();
    case content_cipher::aes_256_gcm:
        return EVP_aes_256_gcm();
    case content_cipher::aes_128_gcm:
        return EVP_aes_128_gcm();
    }
    return EVP_aes_256_cbc();
}

/// The key that signs throwaway certificates: their signature is never checked, but OpenSSL
/// expects a complete certificate. Made once per process.
EVP_PKEY* throwaway_signer() {
    static std::once_flag once;
    static c_ptr<EVP_PKEY> signer;
    std::call_once(once, [] { signer.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")); });
    return signer.get();
}

/// A certificate carrying a bare public key (SMIMEA selector 1), so CMS can address it by
/// subjectKeyIdentifier: there is no public OpenSSL API for a recipient without one.
std::variant<c_ptr<X509>, std::string> certificate_for_bare_key(EVP_PKEY& key) {
    c_ptr<X509> cert(X509_new());
    EVP_PKEY* signer = throwaway_signer();
    if (!cert || signer == nullptr || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
        ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1) != 1 ||
        X509_set_pubkey(cert.get(), &key) != 1 ||
        X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("SMIMEA bare key"), -1,
                                   -1, 0) != 1 ||
        X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0) == nullptr ||
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), 60) == nullptr) {
        return openssl_error("building a certificate for a bare key");
    }
    // RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's contents.
    const ASN1_BIT_STRING* bits = X509_get0_pubkey_bitstr(cert.get());
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    c_ptr<ASN1_OCTET_STRING> ski(ASN1_OCTET_STRING_new());
    if (bits == nullptr || !ski ||
        EVP_Digest(bits->data, static_cast<std::size_t>(bits->length), digest, &digest_len,
                   EVP_sha1(), nullptr) != 1 ||
        ASN1_OCTET_STRING_set(ski.get(), digest, static_cast<int>(digest_len)) != 1 ||
        X509_add1_ext_i2d(cert.get(), NID_subject_key_identifier, ski.get(), 0, 0) != 1 ||
        X509_sign(cert.get(), signer, nullptr) <= 0) {
        return openssl_error("building a certificate for a bare key");
    }
    return cert;
}

/// Sets the key-management parameters on a RecipientInfo made with CMS_KEY_PARAM: RSAES-OAEP
/// with SHA-256 for RSA (only OAEP gets here), a SHA-256 KDF for ECDH (RFC 8551 §2.3).
bool set_key_parameters(CMS_RecipientInfo* ri, const certificate_key& k) {
    EVP_PKEY_CTX* ctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
    if (ctx == nullptr) {
        return false;
    }
    if (k.type == key_type::rsa) {
        return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
               EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) > 0 &&
               EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) > 0;
    }
    // OpenSSL's default KDF is SHA-1 (dhSinglePass-stdDH-sha1kdf-scheme).
    return EVP_PKEY_CTX_set_ecdh_kdf_md(ctx, EVP_sha256()) > 0;
}

} // namespace

std::string_view smime_type(content_cipher cipher) {
    switch (cipher) {
    case content_cipher::aes_256_gcm:
    case content_cipher::aes_128_gcm:
        return "authEnveloped-data";
    case content_cipher::aes_256_cbc:
    case content_cipher::aes_128_cbc:
        return "enveloped-data";
    }
    return "enveloped-data";
}

struct cms_encoder::state {
    c_ptr<CMS_ContentInfo> cms;
    /// The end of the chain: a base64_sink that encodes the BER output into `*out` as it comes.
    c_ptr<BIO> output;
    /// The CMS BIO chain (cipher → ASN.1 streaming → output), owned up to `output`.
    BIO* chain = nullptr;
    /// Where base64_sink appends, during a write to the chain.
    std::string* out = nullptr;
    /// Plaintext gathered from small writes until it makes a chunk.
    std::string staged;
    bool wrote_any = false;
    /// BER octets not yet making a whole base64 line.
    std::string base64_pending;

    ~state() {
        release_chain();
        util::wipe(staged);
    }

    void release_chain() {
        // Free each BIO the CMS layer pushed, but not `output`, which we own.
        while (chain != nullptr && chain != output.get()) {
            BIO* next = BIO_pop(chain);
            BIO_free(chain);
            chain = next;
        }
        chain = nullptr;
    }

    std::optional<std::string> push(std::string_view plaintext, std::string& to) {
        wrote_any = wrote_any || !plaintext.empty();
        out = &to;
        while (!plaintext.empty()) {
            int n = BIO_write(chain, plaintext.data(), static_cast<int>(plaintext.size()));
            if (n <= 0) {
                out = nullptr;
                return openssl_error("encrypting");
            }
            plaintext.remove_prefix(static_cast<std::size_t>(n));
        }
        out = nullptr;
        return std::nullopt;
    }

    std::optional<std::string> push_staged(std::string& to) {
        auto problem = push(staged, to);
        util::wipe(staged);
        return problem;
    }

    /// BER output from the chain: whole lines are encoded straight from `ber`, the rest waits.
    void take_ber(std::string_view ber) {
        if (!base64_pending.empty()) {
            std::size_t take = std::min(ber.size(), base64_group - base64_pending.size());
            base64_pending.append(ber.substr(0, take));
            ber.remove_prefix(take);
            if (base64_pending.size() < base64_group) {
                return;
            }
            encode_lines(base64_pending, *out);
            base64_pending.clear();
        }
        std::size_t whole = ber.size() - ber.size() % base64_group;
        encode_lines(ber.substr(0, whole), *out);
        base64_pending.append(ber.substr(whole));
    }

    /// Appends `ber` to `to` as base64 lines of base64_group octets (the last one may be
    /// shorter), each ending in CRLF. They are encoded in place, `to` sized once for all of
    /// them.
    static void encode_lines(std::string_view ber, std::string& to) {
        const std::size_t lines = (ber.size() + base64_group - 1) / base64_group;
        const std::size_t line_room = base64_length(base64_group) + 2;
        const std::size_t at = to.size();
        to.resize(at + lines * line_room);
        to.resize(at + encode_base64_lines(ber, base64_group, "\r\n", to.data() + at));
    }
};

namespace {

/// A sink BIO at the end of the CMS chain: the BER goes to the encoder's base64 as it is
/// written, with no memory BIO (a copy, and a clearing on every reset) in between.
int base64_sink_write(BIO* bio, const char* data, std::size_t size, std::size_t* written) {
    auto* st = static_cast<cms_encoder::state*>(BIO_get_data(bio));
    if (st == nullptr || st->out == nullptr) {
        return 0;
    }
    st->take_ber(std::string_view(data, size));
    *written = size;
    return 1;
}

long base64_sink_ctrl(BIO* /*bio*/, int command, long /*number*/, void* /*pointer*/) {
    switch (command) {
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        // Nothing is ever pending here, and no other control applies.
        return 0;
    }
}

int base64_sink_create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
}

const BIO_METHOD* base64_sink_method() {
    static std::once_flag once;
    static c_ptr<BIO_METHOD> method;
    std::call_once(once, [] {
        c_ptr<BIO_METHOD> made(
            BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mailseal base64 sink"));
        if (made && BIO_meth_set_write_ex(made.get(), base64_sink_write) == 1 &&
            BIO_meth_set_ctrl(made.get(), base64_sink_ctrl) == 1 &&
            BIO_meth_set_create(made.get(), base64_sink_create) == 1) {
            method = std::move(made);
        }
    });
    return method.get();
}

} // namespace

cms_encoder::cms_encoder(std::unique_ptr<state> s) : state_(std::move(s)) {}
cms_encoder::cms_encoder(cms_encoder&&) noexcept = default;
cms_encoder& cms_encoder::operator=(cms_encoder&&) noexcept = default;
cms_encoder::~cms_encoder() = default;

std::variant<cms_encoder, std::string> cms_encoder::begin(const std::vector<key>& keys,
                                                          const options& opts) {
    if (keys.empty()) {
        return std::string("no keys to encrypt to");
    }
    ERR_clear_error();
    auto st = std::make_unique<state>();
    // A GCM cipher makes CMS_encrypt build AuthEnvelopedData (RFC 5083) instead.
    st->cms.reset(CMS_encrypt(nullptr, nullptr, cipher_for(opts.cipher),
                              CMS_STREAM | CMS_PARTIAL | CMS_BINARY));
    if (!st->cms) {
        return openssl_error("creating the CMS object");
    }
    for (const auto& generic : keys) {
        const certificate_key* found = certificate_of(generic);
        if (found == nullptr) {
            return "not an S/MIME key: " + generic.source;
        }
        const certificate_key& k = *found;
        c_ptr<X509> bare_key_cert;
        X509* cert = k.certificate.get();
        unsigned int flags = CMS_BINARY;
        if (cert == nullptr) {
            auto made = certificate_for_bare_key(*k.public_key);
            if (auto* problem = std::get_if<std::string>(&made)) {
                return std::move(*problem);
            }
            bare_key_cert = std::move(std::get<c_ptr<X509>>(made));
            cert = bare_key_cert.get();
            flags |= CMS_USE_KEYID;
        }
        bool custom = k.type != key_type::rsa || opts.padding == rsa_padding::oaep;
        if (custom) {
            flags |= CMS_KEY_PARAM;
        }
        CMS_RecipientInfo* ri = CMS_add1_recipient_cert(st->cms.get(), cert, flags);
        if (ri == nullptr) {
            return openssl_error("adding the recipient " + generic.source);
        }
        if (custom && !set_key_parameters(ri, k)) {
            return openssl_error("setting key parameters for " + generic.source);
        }
    }
    const BIO_METHOD* sink = base64_sink_method();
    st->output.reset(sink == nullptr ? nullptr : BIO_new(sink));
    if (!st->output) {
        return openssl_error("allocating the output sink");
    }
    BIO_set_data(st->output.get(), st.get());
    st->chain = BIO_new_CMS(st->output.get(), st->cms.get());
    if (st->chain == nullptr) {
        return openssl_error("starting the CMS stream");
    }
    st->staged.reserve(chunk_size);
    return cms_encoder(std::move(st));
}

std::optional<std::string> cms_encoder::write(std::string_view plaintext, std::string& out) {
    while (!plaintext.empty()) {
        if (state_->staged.empty() && plaintext.size() >= direct_minimum) {
            // Large enough to go to OpenSSL as it is, without a copy into `staged`.
            auto take = std::min(plaintext.size(), chunk_size);
            if (auto problem = state_->push(plaintext.substr(0, take), out)) {
                return problem;
            }
            plaintext.remove_prefix(take);
            continue;
        }
        std::size_t take = std::min(plaintext.size(), chunk_size - state_->staged.size());
        state_->staged.append(plaintext.substr(0, take));
        plaintext.remove_prefix(take);
        if (state_->staged.size() == chunk_size) {
            if (auto problem = state_->push_staged(out)) {
                return problem;
            }
        }
    }
    return std::nullopt;
}

std::optional<std::string> cms_encoder::finish(std::string& out) {
    if (auto problem = state_->push_staged(out)) {
        return problem;
    }
    // OpenSSL's streaming cannot end content it never started; a sealed copy always holds at
    // least the inner entity's empty line.
    if (!state_->wrote_any) {
        return std::string("no content to encrypt");
    }
    // The flush writes the end of the content, the GCM tag and the closing octets.
    state_->out = &out;
    int flushed = BIO_flush(state_->chain);
    state_->out = nullptr;
    if (flushed != 1) {
        return openssl_error("finishing the CMS stream");
    }
    state_->release_chain();
    state_->encode_lines(state_->base64_pending, out);
    state_->base64_pending.clear();
    return std::nullopt;
}

} // namespace mailseal::seal::smime
