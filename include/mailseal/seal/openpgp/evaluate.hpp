// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Which OpenPGP keys a recipient's copy may be sealed to, from the OPENPGPKEY records (RFC
/// 7929) that DNSSEC proved and from the operator's local key store (`.asc` and `.pgp` files).
/// librnp parses and validates each transferable public key in memory: no keyring file, no
/// GnuPG home directory, no agent.
///
/// A transferable public key gives a key for each of its encryption-capable keys (the primary
/// or a subkey, by its key flags) that is not revoked, not expired, bound by a valid
/// self-signature, and of an algorithm every OpenPGP reader decrypts: RSA of 2048 bits or
/// more, or ECDH on Curve25519, the NIST curves or the Brainpool curves. The key as a whole
/// must be a version 4 key, valid now, and have a valid, unrevoked user ID naming the address
/// (RFC 7929 §5: a key found under one address is not used for another). Every key that
/// passes is used: several published keys, or several encryption subkeys, all get the copy.
///
/// Failure policy: nothing here throws or logs; every record, file and key gets a
/// candidate_report saying why it is usable or not.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <mailseal/dns/lookup.hpp>
#include <mailseal/seal/format.hpp>
#include <mailseal/seal/openpgp/rnp.hpp>

namespace mailseal::seal::openpgp {

/// The RR type of OPENPGPKEY (RFC 7929 §2).
inline constexpr std::uint16_t openpgpkey_rr_type = 61;

/// What an OpenPGP key is made of: the transferable public key it belongs to, in binary form
/// as librnp exported it, and which of its keys to encrypt to.
struct encryption_key final : key_material {
    std::shared_ptr<const std::vector<std::uint8_t>> transferable_key;
    /// The fingerprint of the key to encrypt to (the primary or a subkey), uppercase hex as
    /// librnp writes it.
    std::string fingerprint;
};

/// The encryption key inside a key this format made; null for another format's.
const encryption_key* encryption_key_of(const key& k);

/// One place keys come from: a record's RDATA, or a local store file's content.
struct key_data {
    /// "openpgpkey #1" (record number in answer order) or "local <path>".
    std::string source;
    std::vector<std::uint8_t> bytes;
    /// A record must be exactly one binary transferable public key (RFC 7929 §2.1); a file may
    /// hold several, armoured or binary.
    bool record = false;
};

/// Evaluates DNSSEC-secure records, or the local store when `secure_records` is empty.
///
/// With records that parse as OpenPGP keys, only they give keys; local keys are reported but
/// not used. If no record parses, the answer says nothing usable and the local store is used,
/// as for a secure absence.
///
/// `address` is local-part@A-label-domain as the user IDs should name it: the local part is
/// compared ASCII case-insensitively (as GnuPG matches addresses), the domain in A-label form.
evaluation evaluate(const std::vector<key_data>& secure_records,
                    const std::vector<key_data>& local_files, std::string_view address,
                    std::chrono::system_clock::time_point now);

/// The precedence between DNS and the local store, as for S/MIME: secure records first, a
/// secure absence or an insecure answer opens the local store, and a bogus or failed lookup
/// yields nothing.
evaluation select_keys(dns::outcome outcome, const std::vector<key_data>& records,
                       const std::vector<key_data>& local_files, std::string_view address,
                       std::chrono::system_clock::time_point now);

/// Why `key`, in a librnp context, cannot be encrypted to at `now`: its key flags do not allow
/// encryption; it is revoked, expired, not yet valid or without a valid self-signature; or its
/// algorithm is refused. Empty when it can be. The encoder asks again in its own context, where
/// librnp would otherwise quietly pick another key of the same transferable key.
std::string encryption_problem(rnp_key_handle_t key, std::chrono::system_clock::time_point now);

/// RFC 7929 §5: whether a user ID ("Alice <alice@example.org>", or a bare address) names
/// `address` (local-part@A-label-domain): the local part compared ASCII case-insensitively, as
/// GnuPG matches addresses, the domain in A-label form.
bool names_address(std::string_view user_id, std::string_view address);

/// A local key file's content, at most 1 MiB; a file that cannot be read is a problem report.
struct file_content {
    std::optional<key_data> data;
    std::optional<candidate_report> problem;
};
file_content read_key_file(const std::filesystem::path& file);

/// Whether the file starts like OpenPGP key material: an armoured PUBLIC KEY BLOCK, or a
/// binary public-key packet (tag 6).
bool looks_like_key(const std::filesystem::path& file);

} // namespace mailseal::seal::openpgp
