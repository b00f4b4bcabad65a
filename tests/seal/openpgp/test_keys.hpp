// SPDX-License-Identifier: Apache-2.0
#pragma once

// OpenPGP keys for the tests, made with librnp in memory: a transferable public key to give
// mailseal, and its secret counterpart to decrypt what mailseal made. Every key is created at
// test_created (2025-01-01) and judged at test_now (2026-06-01), so dates in reports are fixed.

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <mailseal/seal/openpgp/rnp.hpp>

namespace mailseal::seal::openpgp::test {

using bytes = std::vector<std::uint8_t>;

constexpr std::uint64_t test_created = 1735689600; // 2025-01-01T00:00:00Z
constexpr std::uint64_t test_now = 1780272000;     // 2026-06-01T00:00:00Z
constexpr std::uint32_t day = 86400;

inline void check(rnp_result_t rc, const char* what) {
    if (rc != RNP_SUCCESS) {
        throw std::runtime_error(std::string(what) + ": " + rnp_result_to_string(rc));
    }
}

/// One subkey to add.
struct subkey_spec {
    const char* algorithm = "ECDH"; ///< "ECDH", "RSA", "ELGAMAL", "EDDSA", ...
    const char* curve = "Curve25519";
    std::uint32_t bits = 0;
    const char* usage = "encrypt";
    std::uint32_t expiration = 0; ///< seconds after creation; 0: never
    bool revoked = false;
};

struct key_spec {
    std::vector<std::string> user_ids{"Alice <alice@example.org>"};
    const char* algorithm = "EDDSA"; ///< of the primary
    const char* curve = nullptr;
    std::uint32_t bits = 0;
    /// Extra usage of the primary (beside sign, certify): "encrypt" for an RSA key without
    /// subkeys.
    const char* extra_usage = nullptr;
    std::uint32_t expiration = 0;
    std::uint64_t created = test_created;
    bool revoked = false;
    std::vector<subkey_spec> subkeys{subkey_spec{}};
};

struct made_key {
    bytes public_key;
    /// The public key as it was before the revocations key_spec asked for: a stale copy.
    bytes unrevoked_public_key;
    /// A revocation certificate for the primary key (a lone signature packet), as
    /// `gpg --gen-revoke` writes one.
    bytes revocation;
    bytes secret_key;
    std::string fingerprint;              ///< the primary's, uppercase
    std::vector<std::string> subkey_fprs; ///< in the order of key_spec::subkeys
};

inline bytes export_key(rnp_key_handle_t key, std::uint32_t flags) {
    rnp_output_t raw = nullptr;
    check(rnp_output_to_memory(&raw, 0), "output");
    c_ptr<rnp_output_st> out(raw);
    check(rnp_key_export(key, out.get(), flags), "export");
    std::uint8_t* buf = nullptr;
    std::size_t len = 0;
    check(rnp_output_memory_get_buf(out.get(), &buf, &len, false), "buffer");
    return bytes(buf, buf + len);
}

inline std::string fingerprint_of(rnp_key_handle_t key) {
    char* raw = nullptr;
    check(rnp_key_get_fprint(key, &raw), "fingerprint");
    c_ptr<char> owned(raw);
    return owned.get();
}

inline made_key make_key(const key_spec& spec) {
    rnp_ffi_t raw_ffi = nullptr;
    check(rnp_ffi_create(&raw_ffi, "GPG", "GPG"), "ffi");
    c_ptr<rnp_ffi_st> ffi(raw_ffi);
    check(rnp_set_timestamp(ffi.get(), spec.created), "timestamp");
    rnp_op_generate_t raw_op = nullptr;
    check(rnp_op_generate_create(&raw_op, ffi.get(), spec.algorithm), "generate");
    rnp_key_handle_t raw_primary = nullptr;
    {
        struct op_owner {
            rnp_op_generate_t op;
            ~op_owner() { rnp_op_generate_destroy(op); }
        } owner{raw_op};
        if (spec.bits != 0) {
            check(rnp_op_generate_set_bits(raw_op, spec.bits), "bits");
        }
        if (spec.curve != nullptr) {
            check(rnp_op_generate_set_curve(raw_op, spec.curve), "curve");
        }
        check(rnp_op_generate_set_userid(raw_op, spec.user_ids.front().c_str()), "userid");
        check(rnp_op_generate_set_expiration(raw_op, spec.expiration), "expiration");
        check(rnp_op_generate_add_usage(raw_op, "sign"), "usage");
        check(rnp_op_generate_add_usage(raw_op, "certify"), "usage");
        if (spec.extra_usage != nullptr) {
            check(rnp_op_generate_add_usage(raw_op, spec.extra_usage), "usage");
        }
        check(rnp_op_generate_execute(raw_op), "execute");
        check(rnp_op_generate_get_key(raw_op, &raw_primary), "key");
    }
    c_ptr<rnp_key_handle_st> primary(raw_primary);
    for (std::size_t i = 1; i < spec.user_ids.size(); ++i) {
        check(rnp_key_add_uid(primary.get(), spec.user_ids[i].c_str(), nullptr, 0, 0x03, false),
              "add uid");
    }
    made_key out;
    for (const auto& sub : spec.subkeys) {
        rnp_op_generate_t raw_sub = nullptr;
        check(rnp_op_generate_subkey_create(&raw_sub, ffi.get(), primary.get(), sub.algorithm),
              "subkey");
        struct op_owner {
            rnp_op_generate_t op;
            ~op_owner() { rnp_op_generate_destroy(op); }
        } owner{raw_sub};
        if (sub.bits != 0) {
            check(rnp_op_generate_set_bits(raw_sub, sub.bits), "bits");
        }
        if (std::string(sub.algorithm) == "ECDH" || std::string(sub.algorithm) == "EDDSA") {
            check(rnp_op_generate_set_curve(raw_sub, sub.curve), "curve");
        }
        check(rnp_op_generate_add_usage(raw_sub, sub.usage), "usage");
        check(rnp_op_generate_set_expiration(raw_sub, sub.expiration), "expiration");
        check(rnp_op_generate_execute(raw_sub), "execute");
        rnp_key_handle_t raw_key = nullptr;
        check(rnp_op_generate_get_key(raw_sub, &raw_key), "key");
        c_ptr<rnp_key_handle_st> key(raw_key);
        out.subkey_fprs.push_back(fingerprint_of(key.get()));
    }
    out.unrevoked_public_key =
        export_key(primary.get(), RNP_KEY_EXPORT_PUBLIC | RNP_KEY_EXPORT_SUBKEYS);
    {
        rnp_output_t raw_out = nullptr;
        check(rnp_output_to_memory(&raw_out, 0), "output");
        c_ptr<rnp_output_st> sig(raw_out);
        check(
            rnp_key_export_revocation(primary.get(), sig.get(), 0, nullptr, "compromised", "lost"),
            "revocation");
        std::uint8_t* buf = nullptr;
        std::size_t len = 0;
        check(rnp_output_memory_get_buf(sig.get(), &buf, &len, false), "buffer");
        out.revocation = bytes(buf, buf + len);
    }
    for (std::size_t i = 0; i < spec.subkeys.size(); ++i) {
        if (!spec.subkeys[i].revoked) {
            continue;
        }
        rnp_key_handle_t raw_key = nullptr;
        check(rnp_locate_key(ffi.get(), "fingerprint", out.subkey_fprs[i].c_str(), &raw_key),
              "locate");
        c_ptr<rnp_key_handle_st> key(raw_key);
        check(rnp_key_revoke(key.get(), 0, nullptr, "superseded", "rolled over"), "revoke");
    }
    if (spec.revoked) {
        check(rnp_key_revoke(primary.get(), 0, nullptr, "compromised", "lost"), "revoke");
    }
    out.fingerprint = fingerprint_of(primary.get());
    out.public_key = export_key(primary.get(), RNP_KEY_EXPORT_PUBLIC | RNP_KEY_EXPORT_SUBKEYS);
    out.secret_key = export_key(primary.get(), RNP_KEY_EXPORT_SECRET | RNP_KEY_EXPORT_SUBKEYS);
    return out;
}

/// ASCII armour of `data` (as GnuPG writes .asc files).
inline bytes armoured(const bytes& data, const char* type = "public key") {
    rnp_input_t raw_in = nullptr;
    check(rnp_input_from_memory(&raw_in, data.data(), data.size(), false), "input");
    c_ptr<rnp_input_st> in(raw_in);
    rnp_output_t raw_out = nullptr;
    check(rnp_output_to_memory(&raw_out, 0), "output");
    c_ptr<rnp_output_st> out(raw_out);
    check(rnp_enarmor(in.get(), out.get(), type), "armour");
    std::uint8_t* buf = nullptr;
    std::size_t len = 0;
    check(rnp_output_memory_get_buf(out.get(), &buf, &len, false), "buffer");
    return bytes(buf, buf + len);
}

/// Decrypts an (armoured) OpenPGP message with `secret_key`; nullopt when it cannot.
inline std::optional<std::string> decrypt(const std::string& message, const bytes& secret_key) {
    rnp_ffi_t raw_ffi = nullptr;
    check(rnp_ffi_create(&raw_ffi, "GPG", "GPG"), "ffi");
    c_ptr<rnp_ffi_st> ffi(raw_ffi);
    rnp_input_t raw_keys = nullptr;
    check(rnp_input_from_memory(&raw_keys, secret_key.data(), secret_key.size(), false), "in");
    c_ptr<rnp_input_st> keys(raw_keys);
    check(rnp_import_keys(ffi.get(), keys.get(), RNP_LOAD_SAVE_SECRET_KEYS, nullptr), "import");
    rnp_input_t raw_in = nullptr;
    check(rnp_input_from_memory(&raw_in, reinterpret_cast<const std::uint8_t*>(message.data()),
                                message.size(), false),
          "input");
    c_ptr<rnp_input_st> in(raw_in);
    rnp_output_t raw_out = nullptr;
    check(rnp_output_to_memory(&raw_out, 0), "output");
    c_ptr<rnp_output_st> out(raw_out);
    if (rnp_decrypt(ffi.get(), in.get(), out.get()) != RNP_SUCCESS) {
        return std::nullopt;
    }
    std::uint8_t* buf = nullptr;
    std::size_t len = 0;
    check(rnp_output_memory_get_buf(out.get(), &buf, &len, false), "buffer");
    return std::string(reinterpret_cast<const char*>(buf), len);
}

} // namespace mailseal::seal::openpgp::test
