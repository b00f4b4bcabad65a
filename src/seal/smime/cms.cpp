// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/rand.h>
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

/// The subjectKeyIdentifier of RFC 5280 §4.2.1.2 method 1 for `k`: SHA-1 of the
/// subjectPublicKey BIT STRING's contents in its SubjectPublicKeyInfo. Both ways of writing
/// the CMS name a bare key (SMIMEA selector 1) by it.
std::optional<std::string> subject_key_identifier(const certificate_key& k) {
    const unsigned char* der = k.spki_der.data();
    c_ptr<X509_PUBKEY> spki(d2i_X509_PUBKEY(nullptr, &der, static_cast<long>(k.spki_der.size())));
    const unsigned char* bits = nullptr;
    int bits_length = 0;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    if (!spki || X509_PUBKEY_get0_param(nullptr, &bits, &bits_length, nullptr, spki.get()) != 1 ||
        EVP_Digest(bits, static_cast<std::size_t>(bits_length), digest, &digest_length, EVP_sha1(),
                   nullptr) != 1) {
        return std::nullopt;
    }
    return std::string(reinterpret_cast<const char*>(digest), digest_length);
}

/// A certificate carrying a bare public key, so OpenSSL's CMS can address it by
/// subjectKeyIdentifier: there is no public OpenSSL API for a recipient without one.
std::variant<c_ptr<X509>, std::string> certificate_for_bare_key(const certificate_key& k) {
    c_ptr<X509> cert(X509_new());
    EVP_PKEY* signer = throwaway_signer();
    if (!cert || signer == nullptr || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
        ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1) != 1 ||
        X509_set_pubkey(cert.get(), k.public_key.get()) != 1 ||
        X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("SMIMEA bare key"), -1,
                                   -1, 0) != 1 ||
        X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0) == nullptr ||
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), 60) == nullptr) {
        return openssl_error("building a certificate for a bare key");
    }
    auto key_id = subject_key_identifier(k);
    c_ptr<ASN1_OCTET_STRING> ski(ASN1_OCTET_STRING_new());
    if (!key_id || !ski ||
        ASN1_OCTET_STRING_set(ski.get(), reinterpret_cast<const unsigned char*>(key_id->data()),
                              static_cast<int>(key_id->size())) != 1 ||
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

namespace {

/// BER octets as base64 lines of base64_group octets, each ending in the copy's line end: whole
/// lines are encoded straight from the input, the rest waits for more.
class base64_lines {
public:
    void set_line_end(std::string_view line_end) { line_end_ = line_end; }

    void take(std::string_view ber, std::string& out) {
        if (!pending_.empty()) {
            std::size_t take = std::min(ber.size(), base64_group - pending_.size());
            pending_.append(ber.substr(0, take));
            ber.remove_prefix(take);
            if (pending_.size() < base64_group) {
                return;
            }
            encode(pending_, out);
            pending_.clear();
        }
        std::size_t whole = ber.size() - ber.size() % base64_group;
        encode(ber.substr(0, whole), out);
        pending_.append(ber.substr(whole));
    }

    /// The last, shorter line.
    void end(std::string& out) {
        encode(pending_, out);
        pending_.clear();
    }

private:
    /// Encodes in place, `out` sized once for all the lines.
    void encode(std::string_view ber, std::string& out) const {
        const std::size_t lines = (ber.size() + base64_group - 1) / base64_group;
        const std::size_t line_room = base64_length(base64_group) + line_end_.size();
        const std::size_t at = out.size();
        out.resize(at + lines * line_room);
        out.resize(at + encode_base64_lines(ber, base64_group, line_end_, out.data() + at));
    }

    std::string pending_;
    std::string line_end_ = "\r\n";
};

} // namespace

/// The encoder's state, whichever way the CMS is made.
struct cms_encoder::state {
    state() = default;
    state(const state&) = delete;
    state& operator=(const state&) = delete;
    virtual ~state() { util::wipe(staged); }

    /// Encrypts `head` and then `rest` as one piece of the content, of at most chunk_size
    /// octets, appending complete base64 lines to `to`.
    virtual std::optional<std::string> encrypt(std::string_view head, std::string_view rest,
                                               std::string& to) = 0;
    /// Ends the content after the last encrypt() and appends the closing lines.
    virtual std::optional<std::string> end(std::string& to) = 0;

    /// Encrypts what is staged followed by `rest` (at most chunk_size in all), and wipes the
    /// staged plaintext: a write that completes a chunk is not copied in first.
    std::optional<std::string> push(std::string_view rest, std::string& to) {
        wrote_any = wrote_any || !staged.empty() || !rest.empty();
        auto problem = encrypt(staged, rest, to);
        util::wipe(staged);
        return problem;
    }

    /// Plaintext gathered from small writes until it makes a chunk.
    std::string staged;
    bool wrote_any = false;
    base64_lines lines;
};

namespace {

// ---- EnvelopedData written here ----
//
// The default configuration (AES-CBC, RSA PKCS#1 v1.5 key transport) has a fixed shape, which
// is written here from OpenSSL's primitives: OpenSSL's CMS layer spends more CPU setting up
// one copy (templates, provider fetches, ASN.1 streaming) than the RSA operation and a small
// message's AES together. The output is the BER OpenSSL's streaming writes: indefinite lengths
// outside, the RecipientInfos in DER, the ciphertext as a constructed OCTET STRING.

/// DER length octets (X.690 §8.1.3).
void put_length(std::string& to, std::size_t length) {
    if (length < 0x80) {
        to.push_back(static_cast<char>(length));
        return;
    }
    unsigned char octets[sizeof length];
    std::size_t count = 0;
    for (std::size_t rest = length; rest != 0; rest >>= 8) {
        octets[count++] = static_cast<unsigned char>(rest & 0xff);
    }
    to.push_back(static_cast<char>(0x80 | count));
    while (count > 0) {
        to.push_back(static_cast<char>(octets[--count]));
    }
}

void put_tlv(std::string& to, unsigned char tag, std::string_view contents) {
    to.push_back(static_cast<char>(tag));
    put_length(to, contents.size());
    to.append(contents);
}

std::string_view as_chars(std::span<const unsigned char> octets) {
    return {reinterpret_cast<const char*>(octets.data()), octets.size()};
}

/// Appends the DER OpenSSL makes of `object`.
template <typename T>
bool append_der(std::string& to, const T* object, int (*i2d)(const T*, unsigned char**)) {
    int length = i2d(object, nullptr);
    if (length <= 0) {
        return false;
    }
    const std::size_t at = to.size();
    to.resize(at + static_cast<std::size_t>(length));
    auto* write = reinterpret_cast<unsigned char*>(to.data() + at);
    return i2d(object, &write) == length;
}

constexpr unsigned char tag_octet_string = 0x04;
constexpr unsigned char tag_sequence = 0x30;
constexpr unsigned char tag_set = 0x31;
/// [0] IMPLICIT, primitive: RecipientIdentifier's subjectKeyIdentifier (RFC 5652 §6.2.1).
constexpr unsigned char tag_implicit_0 = 0x80;
/// A SEQUENCE of indefinite length, to be closed by end_of_contents.
constexpr std::string_view open_sequence = "\x30\x80";
/// [0], constructed, of indefinite length: ContentInfo's content and EncryptedContentInfo's
/// encryptedContent.
constexpr std::string_view open_context_0 = "\xa0\x80";
constexpr std::string_view end_of_contents = std::string_view("\x00\x00", 2);

/// OBJECT IDENTIFIERs, tag and length included.
/// id-envelopedData, 1.2.840.113549.1.7.3 (RFC 5652 §6.1).
constexpr std::string_view oid_enveloped_data = "\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x03";
/// id-data, 1.2.840.113549.1.7.1 (RFC 5652 §4).
constexpr std::string_view oid_data = "\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01";
/// id-aes256-CBC, 2.16.840.1.101.3.4.1.42, and id-aes128-CBC, 2.16.840.1.101.3.4.1.2
/// (RFC 3565 §4.1).
constexpr std::string_view oid_aes256_cbc = "\x06\x09\x60\x86\x48\x01\x65\x03\x04\x01\x2a";
constexpr std::string_view oid_aes128_cbc = "\x06\x09\x60\x86\x48\x01\x65\x03\x04\x01\x02";
/// AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL } (RFC 3370 §4.2.1).
constexpr std::string_view rsa_encryption_algorithm =
    std::string_view("\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00", 15);

constexpr std::size_t cbc_block = 16;

/// The CBC cipher, fetched from the provider once per process rather than once per copy.
const EVP_CIPHER* fetched_cbc(content_cipher c) {
    static const c_ptr<EVP_CIPHER> aes256(EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr));
    static const c_ptr<EVP_CIPHER> aes128(EVP_CIPHER_fetch(nullptr, "AES-128-CBC", nullptr));
    return c == content_cipher::aes_128_cbc ? aes128.get() : aes256.get();
}

/// RecipientIdentifier (RFC 5652 §6.2.1), as OpenSSL chooses it: issuerAndSerialNumber when
/// there is a certificate, [0] subjectKeyIdentifier for a bare key.
std::optional<std::string> recipient_identifier(const certificate_key& k) {
    std::string out;
    if (k.certificate) {
        std::string contents;
        if (!append_der(contents, X509_get_issuer_name(k.certificate.get()), i2d_X509_NAME) ||
            !append_der(contents, X509_get0_serialNumber(k.certificate.get()), i2d_ASN1_INTEGER)) {
            return std::nullopt;
        }
        put_tlv(out, tag_sequence, contents);
        return out;
    }
    auto key_id = subject_key_identifier(k);
    if (!key_id) {
        return std::nullopt;
    }
    put_tlv(out, tag_implicit_0, *key_id);
    return out;
}

/// The INTEGER of a CMSVersion: v0 or v2 are all this form uses.
std::string_view cms_version(bool v0) {
    return v0 ? std::string_view("\x02\x01\x00", 3) : std::string_view("\x02\x01\x02", 3);
}

/// `content_key` encrypted to `k` with RSAES-PKCS1-v1_5.
std::optional<std::string> transported_key(const certificate_key& k,
                                           std::span<const unsigned char> content_key) {
    c_ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, k.public_key.get(), nullptr));
    std::size_t length = 0;
    if (!ctx || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) <= 0 ||
        EVP_PKEY_encrypt(ctx.get(), nullptr, &length, content_key.data(), content_key.size()) !=
            1) {
        return std::nullopt;
    }
    std::string out(length, '\0');
    if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &length,
                         content_key.data(), content_key.size()) != 1) {
        return std::nullopt;
    }
    out.resize(length);
    return out;
}

/// The content-encryption key, cleared however its scope ends (an allocation may throw while
/// the RecipientInfos are made).
struct content_key {
    unsigned char octets[EVP_MAX_KEY_LENGTH];
    content_key() = default;
    content_key(const content_key&) = delete;
    content_key& operator=(const content_key&) = delete;
    ~content_key() { OPENSSL_cleanse(octets, sizeof octets); }
};

/// EnvelopedData for RSA keys with PKCS#1 v1.5 and AES-CBC, written as it is encrypted.
class enveloped_stream final : public cms_encoder::state {
public:
    /// Draws the content key and IV, makes a KeyTransRecipientInfo per key and the header.
    static std::variant<std::unique_ptr<cms_encoder::state>, std::string>
    begin(const std::vector<const certificate_key*>& keys, const std::vector<key>& named,
          content_cipher cipher) {
        auto st = std::make_unique<enveloped_stream>();
        const EVP_CIPHER* cbc = fetched_cbc(cipher);
        if (cbc == nullptr) {
            return openssl_error("fetching AES-CBC from OpenSSL's providers");
        }
        st->cipher_.reset(EVP_CIPHER_CTX_new());
        content_key key;
        unsigned char iv[cbc_block];
        const int key_length = EVP_CIPHER_get_key_length(cbc);
        if (!st->cipher_ || key_length <= 0 ||
            static_cast<std::size_t>(key_length) > sizeof key.octets ||
            EVP_CIPHER_get_iv_length(cbc) != static_cast<int>(sizeof iv) ||
            RAND_priv_bytes(key.octets, key_length) != 1 || RAND_bytes(iv, sizeof iv) != 1 ||
            EVP_EncryptInit_ex2(st->cipher_.get(), cbc, key.octets, iv, nullptr) != 1) {
            return openssl_error("setting up the content encryption");
        }
        const std::span<const unsigned char> key_view(key.octets,
                                                      static_cast<std::size_t>(key_length));

        // A KeyTransRecipientInfo is version 0 with issuerAndSerialNumber, 2 with a
        // subjectKeyIdentifier (RFC 5652 §6.2.1).
        std::vector<std::string> recipient_infos;
        recipient_infos.reserve(keys.size());
        for (std::size_t i = 0; i < keys.size(); ++i) {
            const certificate_key& k = *keys[i];
            auto rid = recipient_identifier(k);
            auto encrypted_key = transported_key(k, key_view);
            if (!rid || !encrypted_key) {
                return openssl_error("adding the recipient " + named[i].source);
            }
            std::string contents(cms_version(k.certificate != nullptr));
            contents += *rid;
            contents += rsa_encryption_algorithm;
            put_tlv(contents, tag_octet_string, *encrypted_key);
            put_tlv(recipient_infos.emplace_back(), tag_sequence, contents);
        }
        // DER orders a SET OF by the encodings of its elements (X.690 §11.6).
        std::ranges::sort(recipient_infos);
        std::string set;
        for (const auto& ri : recipient_infos) {
            set += ri;
        }

        std::string algorithm(cipher == content_cipher::aes_128_cbc ? oid_aes128_cbc
                                                                    : oid_aes256_cbc);
        put_tlv(algorithm, tag_octet_string, as_chars(iv));

        std::string& h = st->ber_;
        h += open_sequence; // ContentInfo
        h += oid_enveloped_data;
        h += open_context_0; // content
        h += open_sequence;  // EnvelopedData
        // RFC 5652 §6.1: version 0 when every RecipientInfo is.
        h += cms_version(std::ranges::all_of(
            keys, [](const certificate_key* k) { return k->certificate != nullptr; }));
        put_tlv(h, tag_set, set);
        h += open_sequence; // EncryptedContentInfo
        h += oid_data;
        put_tlv(h, tag_sequence, algorithm);
        h += open_context_0; // encryptedContent, in segments
        return std::unique_ptr<cms_encoder::state>(std::move(st));
    }

    std::optional<std::string> encrypt(std::string_view head, std::string_view rest,
                                       std::string& to) override {
        if (head.size() + rest.size() > chunk_size) {
            return std::string("encrypting: more than one chunk at once");
        }
        // CBC gives out every whole block it has had so far, so the segment's length is known
        // before encrypting it.
        const std::uint64_t blocks_before = consumed_ / cbc_block;
        consumed_ += head.size() + rest.size();
        const std::size_t length =
            static_cast<std::size_t>(consumed_ / cbc_block - blocks_before) * cbc_block;
        if (length > 0) {
            open_segment(length);
        }
        if (ciphertext_capacity_ < head.size() + rest.size() + cbc_block) {
            // Grown to what the copy needs, a chunk at most: a short message needs little.
            ciphertext_capacity_ =
                std::min(chunk_size, 2 * (head.size() + rest.size())) + cbc_block;
            ciphertext_ = std::make_unique_for_overwrite<unsigned char[]>(ciphertext_capacity_);
        }
        int written = 0;
        for (std::string_view part : {head, rest}) {
            int n = 0;
            if (!part.empty() &&
                EVP_EncryptUpdate(cipher_.get(), ciphertext_.get() + written, &n,
                                  reinterpret_cast<const unsigned char*>(part.data()),
                                  static_cast<int>(part.size())) != 1) {
                return openssl_error("encrypting");
            }
            written += n;
        }
        if (static_cast<std::size_t>(written) != length) {
            return "encrypting: the cipher gave " + std::to_string(written) + " octets for a " +
                   std::to_string(length) + "-octet segment";
        }
        lines.take(ber_, to);
        ber_.clear();
        lines.take(as_chars({ciphertext_.get(), length}), to);
        return std::nullopt;
    }

    std::optional<std::string> end(std::string& to) override {
        unsigned char last[cbc_block];
        int written = 0;
        // The final block carries the padding of RFC 5652 §6.3.
        if (EVP_EncryptFinal_ex(cipher_.get(), last, &written) != 1 ||
            static_cast<std::size_t>(written) != cbc_block) {
            return openssl_error("finishing the content encryption");
        }
        open_segment(cbc_block);
        ber_ += as_chars(last);
        // encryptedContent, EncryptedContentInfo, EnvelopedData, content, ContentInfo.
        for (int open = 0; open < 5; ++open) {
            ber_ += end_of_contents;
        }
        lines.take(ber_, to);
        lines.end(to);
        ber_.clear();
        return std::nullopt;
    }

private:
    /// Opens a primitive OCTET STRING segment of the encryptedContent.
    void open_segment(std::size_t length) {
        ber_.push_back(static_cast<char>(tag_octet_string));
        put_length(ber_, length);
    }

    c_ptr<EVP_CIPHER_CTX> cipher_;
    /// BER not yet given to `lines`: the header until the first content, then a segment's
    /// tag and length. Never plaintext.
    std::string ber_;
    /// A segment's ciphertext: the piece and the block CBC may have held back from before.
    /// Not a std::string, which would clear each piece's worth before the cipher fills it.
    std::unique_ptr<unsigned char[]> ciphertext_;
    std::size_t ciphertext_capacity_ = 0;
    /// Plaintext octets given to the cipher so far.
    std::uint64_t consumed_ = 0;
};

// ---- EnvelopedData and AuthEnvelopedData through OpenSSL's CMS layer ----

/// Every other combination: GCM (AuthEnvelopedData), RSAES-OAEP, ECDH key agreement.
class openssl_stream final : public cms_encoder::state {
public:
    static std::variant<std::unique_ptr<cms_encoder::state>, std::string>
    begin(const std::vector<const certificate_key*>& keys, const std::vector<key>& named,
          const options& opts);

    ~openssl_stream() override { release_chain(); }

    std::optional<std::string> encrypt(std::string_view head, std::string_view rest,
                                       std::string& to) override {
        // The cipher BIO cuts each write into OCTET STRINGs of its own: the two parts go in as
        // one write, so a short head does not become a short segment of every chunk.
        std::string_view plaintext = rest;
        if (!head.empty() && !rest.empty()) {
            // Reserved before the first append, so it never grows and leaves an unwiped copy.
            joined_.reserve(chunk_size);
            joined_.append(head);
            joined_.append(rest);
            plaintext = joined_;
        } else if (!head.empty()) {
            plaintext = head;
        }
        out_ = &to;
        std::optional<std::string> problem;
        while (!plaintext.empty()) {
            int n = BIO_write(chain_, plaintext.data(), static_cast<int>(plaintext.size()));
            if (n <= 0) {
                problem = openssl_error("encrypting");
                break;
            }
            plaintext.remove_prefix(static_cast<std::size_t>(n));
        }
        out_ = nullptr;
        util::wipe(joined_);
        return problem;
    }

    std::optional<std::string> end(std::string& to) override {
        // The flush writes the end of the content, the GCM tag and the closing octets.
        out_ = &to;
        int flushed = BIO_flush(chain_);
        out_ = nullptr;
        if (flushed != 1) {
            return openssl_error("finishing the CMS stream");
        }
        release_chain();
        lines.end(to);
        return std::nullopt;
    }

    /// BER from the end of the chain, during a write to it.
    bool take_ber(std::string_view ber) {
        if (out_ == nullptr) {
            return false;
        }
        lines.take(ber, *out_);
        return true;
    }

private:
    void release_chain() {
        // Free each BIO the CMS layer pushed, but not `output_`, which we own.
        while (chain_ != nullptr && chain_ != output_.get()) {
            BIO* next = BIO_pop(chain_);
            BIO_free(chain_);
            chain_ = next;
        }
        chain_ = nullptr;
    }

    c_ptr<CMS_ContentInfo> cms_;
    /// The end of the chain: a base64_sink that gives the BER output to take_ber() as it comes.
    c_ptr<BIO> output_;
    /// The CMS BIO chain (cipher → ASN.1 streaming → output), owned up to `output_`.
    BIO* chain_ = nullptr;
    /// Where the base64 lines go, during a write to the chain.
    std::string* out_ = nullptr;
    /// A chunk's two parts as one, for the write; wiped after it.
    std::string joined_;
};

/// A sink BIO at the end of the CMS chain: the BER goes to the encoder's base64 as it is
/// written, with no memory BIO (a copy, and a clearing on every reset) in between.
int base64_sink_write(BIO* bio, const char* data, std::size_t size, std::size_t* written) {
    auto* st = static_cast<openssl_stream*>(BIO_get_data(bio));
    if (st == nullptr || !st->take_ber(std::string_view(data, size))) {
        return 0;
    }
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

std::variant<std::unique_ptr<cms_encoder::state>, std::string>
openssl_stream::begin(const std::vector<const certificate_key*>& keys,
                      const std::vector<key>& named, const options& opts) {
    auto st = std::make_unique<openssl_stream>();
    // A GCM cipher makes CMS_encrypt build AuthEnvelopedData (RFC 5083) instead.
    st->cms_.reset(CMS_encrypt(nullptr, nullptr, cipher_for(opts.cipher),
                               CMS_STREAM | CMS_PARTIAL | CMS_BINARY));
    if (!st->cms_) {
        return openssl_error("creating the CMS object");
    }
    for (std::size_t i = 0; i < keys.size(); ++i) {
        const certificate_key& k = *keys[i];
        c_ptr<X509> bare_key_cert;
        X509* cert = k.certificate.get();
        unsigned int flags = CMS_BINARY;
        if (cert == nullptr) {
            auto made = certificate_for_bare_key(k);
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
        CMS_RecipientInfo* ri = CMS_add1_recipient_cert(st->cms_.get(), cert, flags);
        if (ri == nullptr) {
            return openssl_error("adding the recipient " + named[i].source);
        }
        if (custom && !set_key_parameters(ri, k)) {
            return openssl_error("setting key parameters for " + named[i].source);
        }
    }
    const BIO_METHOD* sink = base64_sink_method();
    st->output_.reset(sink == nullptr ? nullptr : BIO_new(sink));
    if (!st->output_) {
        return openssl_error("allocating the output sink");
    }
    BIO_set_data(st->output_.get(), st.get());
    st->chain_ = BIO_new_CMS(st->output_.get(), st->cms_.get());
    if (st->chain_ == nullptr) {
        return openssl_error("starting the CMS stream");
    }
    return std::unique_ptr<cms_encoder::state>(std::move(st));
}

} // namespace

cms_encoder::cms_encoder(std::unique_ptr<state> s) : state_(std::move(s)) {}
cms_encoder::cms_encoder(cms_encoder&&) noexcept = default;
cms_encoder& cms_encoder::operator=(cms_encoder&&) noexcept = default;
cms_encoder::~cms_encoder() = default;

std::variant<cms_encoder, std::string>
cms_encoder::begin(const std::vector<key>& keys, const options& opts, std::string_view line_end) {
    if (keys.empty()) {
        return std::string("no keys to encrypt to");
    }
    ERR_clear_error();
    std::vector<const certificate_key*> found;
    found.reserve(keys.size());
    bool fixed_shape = (opts.cipher == content_cipher::aes_256_cbc ||
                        opts.cipher == content_cipher::aes_128_cbc) &&
                       opts.padding == rsa_padding::pkcs1;
    for (const auto& generic : keys) {
        const certificate_key* k = certificate_of(generic);
        if (k == nullptr) {
            return "not an S/MIME key: " + generic.source;
        }
        fixed_shape = fixed_shape && k->type == key_type::rsa;
        found.push_back(k);
    }
    auto begun = fixed_shape ? enveloped_stream::begin(found, keys, opts.cipher)
                             : openssl_stream::begin(found, keys, opts);
    if (auto* problem = std::get_if<std::string>(&begun)) {
        return std::move(*problem);
    }
    auto st = std::move(std::get<std::unique_ptr<state>>(begun));
    st->staged.reserve(chunk_size);
    st->lines.set_line_end(line_end);
    return cms_encoder(std::move(st));
}

std::optional<std::string> cms_encoder::write(std::string_view plaintext, std::string& out) {
    while (!plaintext.empty()) {
        const std::size_t room = chunk_size - state_->staged.size();
        if (plaintext.size() >= room ||
            (state_->staged.empty() && plaintext.size() >= direct_minimum)) {
            // A whole chunk with what is staged, or a write large enough on its own: it goes
            // to the cipher as it is, without a copy into `staged`. The chunks are the same as
            // if it had been staged first.
            auto take = std::min(plaintext.size(), room);
            if (auto problem = state_->push(plaintext.substr(0, take), out)) {
                return problem;
            }
            plaintext.remove_prefix(take);
            continue;
        }
        state_->staged.append(plaintext);
        plaintext = {};
    }
    return std::nullopt;
}

std::optional<std::string> cms_encoder::finish(std::string& out) {
    if (auto problem = state_->push({}, out)) {
        return problem;
    }
    // OpenSSL's streaming cannot end content it never started; a sealed copy always holds at
    // least the inner entity's empty line.
    if (!state_->wrote_any) {
        return std::string("no content to encrypt");
    }
    return state_->end(out);
}

} // namespace mailseal::seal::smime
