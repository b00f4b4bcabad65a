// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <array>
#include <cerrno>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include <mailseal/dns/name.hpp>
#include <mailseal/seal/openpgp/evaluate.hpp>
#include <mailseal/seal/openpgp/rnp.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/errno_text.hpp>

namespace mailseal::seal::openpgp {
namespace {

using clock = std::chrono::system_clock;

/// A key file is one user's keys; anything larger is a mistake, not worth reading on every
/// delivery.
constexpr std::uintmax_t max_file_size = 1u << 20;

/// The curves ECDH keys may be on: RFC 6637's NIST curves, RFC 7748's Curve25519 (as GnuPG,
/// Sequoia, PGPainless and go-crypto all implement it) and the Brainpool curves of RFC 5639.
constexpr std::array<std::string_view, 7> ecdh_curves{
    "Curve25519",      "NIST P-256",      "NIST P-384",     "NIST P-521",
    "brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1"};

/// A string librnp allocated, as std::string (empty when the call failed).
template <typename Call>
std::string rnp_string(Call call) {
    char* raw = nullptr;
    rnp_result_t rc = call(&raw);
    c_ptr<char> owned(raw);
    if (rc != RNP_SUCCESS || !owned) {
        return {};
    }
    return owned.get();
}

bool flag(rnp_result_t (*query)(rnp_key_handle_t, bool*), rnp_key_handle_t key) {
    bool value = false;
    return query(key, &value) == RNP_SUCCESS && value;
}

std::string fingerprint_of(rnp_key_handle_t key) {
    return rnp_string([&](char** out) { return rnp_key_get_fprint(key, out); });
}

/// The last 16 hex digits of a fingerprint: the key ID people see in GnuPG.
std::string key_id(const std::string& fingerprint) {
    return util::ascii_lower(fingerprint.size() > 16 ? fingerprint.substr(fingerprint.size() - 16)
                                                     : fingerprint);
}

struct algorithm {
    std::string name;  ///< librnp's: "RSA", "ECDH", "EDDSA", "ELGAMAL", ...
    std::string curve; ///< for elliptic curves
    int bits = 0;
};

algorithm algorithm_of(rnp_key_handle_t key) {
    algorithm a;
    a.name = rnp_string([&](char** out) { return rnp_key_get_alg(key, out); });
    std::uint32_t bits = 0;
    if (rnp_key_get_bits(key, &bits) == RNP_SUCCESS) {
        a.bits = static_cast<int>(bits);
    }
    if (a.name == "ECDH" || a.name == "ECDSA" || a.name == "EDDSA" || a.name == "SM2") {
        a.curve = rnp_string([&](char** out) { return rnp_key_get_curve(key, out); });
    }
    return a;
}

/// "RSA 3072", "ECDH Curve25519", "EdDSA Ed25519".
std::string describe(const algorithm& a) {
    if (a.name == "EDDSA") {
        return "EdDSA " + a.curve;
    }
    if (a.name == "ELGAMAL") {
        return "ElGamal " + std::to_string(a.bits);
    }
    if (!a.curve.empty()) {
        return a.name + " " + a.curve;
    }
    return a.name + " " + std::to_string(a.bits);
}

/// "rsa", "ecdh-curve25519", "ecdh-nist-p256": the words logs and tools use.
std::string token(const algorithm& a) {
    std::string out = util::ascii_lower(a.name);
    if (!a.curve.empty()) {
        out += "-" + util::ascii_lower(a.curve);
    }
    std::replace(out.begin(), out.end(), ' ', '-');
    return out;
}

/// Why an encryption-capable key's algorithm cannot be used, or empty.
std::string algorithm_problem(const algorithm& a) {
    if (a.name == "RSA") {
        if (a.bits < 2048) {
            return "RSA " + std::to_string(a.bits) + " bits: below 2048";
        }
        return {};
    }
    if (a.name == "ECDH") {
        if (std::find(ecdh_curves.begin(), ecdh_curves.end(), a.curve) == ecdh_curves.end()) {
            return "ECDH on " + a.curve + ": not a curve every OpenPGP reader supports";
        }
        return {};
    }
    if (a.name == "ELGAMAL") {
        return "ElGamal: not accepted (a legacy algorithm; publish an RSA or ECDH key)";
    }
    return a.name + ": not an encryption algorithm";
}

std::uint64_t seconds(clock::time_point t) {
    auto s = std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
    return s > 0 ? static_cast<std::uint64_t>(s) : 1;
}

std::string date_of(std::uint64_t t) {
    return iso_time(clock::from_time_t(static_cast<std::time_t>(t))).substr(0, 10);
}

/// The time until which a key may be used (subkeys: their primary's too); nullopt when never
/// expiring.
std::optional<std::uint64_t> valid_till(rnp_key_handle_t key) {
    std::uint64_t till = 0;
    if (rnp_key_valid_till64(key, &till) != RNP_SUCCESS ||
        till == std::numeric_limits<std::uint64_t>::max()) {
        return std::nullopt;
    }
    return till;
}

/// Why a key (primary or subkey) is not usable now, checked in this order: revoked, expired,
/// not yet valid, no valid self-signature. Empty when it is.
std::string validity_problem(rnp_key_handle_t key, std::uint64_t now) {
    if (flag(&rnp_key_is_revoked, key)) {
        return "revoked";
    }
    std::uint32_t created = 0;
    rnp_key_get_creation(key, &created);
    auto till = valid_till(key);
    if (created > now) {
        return "not valid before " + date_of(created);
    }
    if (till && *till != 0 && *till < now) {
        return "expired " + date_of(*till);
    }
    if (!flag(&rnp_key_is_valid, key)) {
        return "no valid self-signature";
    }
    return {};
}

/// The address in a user ID: inside the last <...>, or the whole ID when it is a bare
/// addr-spec.
std::string address_in(std::string_view uid) {
    auto open = uid.rfind('<');
    auto close = uid.rfind('>');
    if (open != std::string_view::npos && close != std::string_view::npos && open < close) {
        return std::string(uid.substr(open + 1, close - open - 1));
    }
    if (uid.find('@') != std::string_view::npos && uid.find(' ') == std::string_view::npos) {
        return std::string(uid);
    }
    return {};
}

struct user_ids {
    std::vector<std::string> all;
    bool names_it = false;
};

user_ids user_ids_of(rnp_key_handle_t primary, std::string_view address) {
    user_ids out;
    std::size_t count = 0;
    rnp_key_get_uid_count(primary, &count);
    for (std::size_t i = 0; i < count; ++i) {
        rnp_uid_handle_t raw = nullptr;
        if (rnp_key_get_uid_handle_at(primary, i, &raw) != RNP_SUCCESS) {
            continue;
        }
        c_ptr<rnp_uid_handle_st> uid(raw);
        std::uint32_t type = 0;
        if (rnp_uid_get_type(uid.get(), &type) != RNP_SUCCESS || type != RNP_USER_ID) {
            continue; // a photo
        }
        auto text = rnp_string([&](char** s) { return rnp_key_get_uid_at(primary, i, s); });
        out.all.push_back(text);
        bool valid = false;
        bool revoked = true;
        rnp_uid_is_valid(uid.get(), &valid);
        rnp_uid_is_revoked(uid.get(), &revoked);
        if (valid && !revoked && names_address(text, address)) {
            out.names_it = true;
        }
    }
    return out;
}

/// Notes a time stamp of a key or signature as an edge of the verdict: the second itself and
/// the one after, since whether librnp counts the exact second as inside or outside a period
/// is its own business.
void note_stamp(evaluation& ev, std::uint64_t stamp, std::uint64_t now) {
    if (stamp <= now ||
        stamp >= static_cast<std::uint64_t>(std::numeric_limits<std::time_t>::max())) {
        return;
    }
    auto at = clock::from_time_t(static_cast<std::time_t>(now));
    auto edge = clock::from_time_t(static_cast<std::time_t>(stamp));
    note_change(ev, edge, at);
}

void note_signature_times(rnp_signature_handle_t sig, std::uint64_t now, evaluation& ev) {
    std::uint32_t created = 0;
    std::uint32_t expires_after = 0;
    if (rnp_signature_get_creation(sig, &created) != RNP_SUCCESS) {
        return;
    }
    note_stamp(ev, created, now);
    if (rnp_signature_get_expiration(sig, &expires_after) == RNP_SUCCESS && expires_after != 0) {
        std::uint64_t end = std::uint64_t{created} + expires_after;
        note_stamp(ev, end, now);
        note_stamp(ev, end + 1, now);
    }
}

/// Whether a key, a subkey, a user ID or a self-signature is valid depends on the time: the
/// verdict on a transferable key holds until the first of its time stamps still to come.
void note_key_times(rnp_key_handle_t key, std::uint64_t now, evaluation& ev) {
    std::uint32_t created = 0;
    if (rnp_key_get_creation(key, &created) == RNP_SUCCESS) {
        note_stamp(ev, created, now);
    }
    if (auto till = valid_till(key); till && *till != 0) {
        note_stamp(ev, *till, now);
        note_stamp(ev, *till + 1, now);
    }
    std::size_t count = 0;
    rnp_key_get_signature_count(key, &count);
    for (std::size_t i = 0; i < count; ++i) {
        rnp_signature_handle_t raw = nullptr;
        if (rnp_key_get_signature_at(key, i, &raw) == RNP_SUCCESS && raw != nullptr) {
            c_ptr<rnp_signature_handle_st> sig(raw);
            note_signature_times(sig.get(), now, ev);
        }
    }
    std::size_t uids = 0;
    rnp_key_get_uid_count(key, &uids);
    for (std::size_t u = 0; u < uids; ++u) {
        rnp_uid_handle_t raw_uid = nullptr;
        if (rnp_key_get_uid_handle_at(key, u, &raw_uid) != RNP_SUCCESS || raw_uid == nullptr) {
            continue;
        }
        c_ptr<rnp_uid_handle_st> uid(raw_uid);
        std::size_t signatures = 0;
        rnp_uid_get_signature_count(uid.get(), &signatures);
        for (std::size_t i = 0; i < signatures; ++i) {
            rnp_signature_handle_t raw = nullptr;
            if (rnp_uid_get_signature_at(uid.get(), i, &raw) == RNP_SUCCESS && raw != nullptr) {
                c_ptr<rnp_signature_handle_st> sig(raw);
                note_signature_times(sig.get(), now, ev);
            }
        }
    }
}

/// A usable key while the candidates are compared; it becomes a seal::key once chosen.
struct found_key {
    key k;
    std::size_t report;
};

/// One transferable public key, judged as a whole and key by key.
void examine(rnp_key_handle_t primary, std::string source, bool local, std::string_view address,
             std::uint64_t now, evaluation& ev, std::vector<found_key>& found) {
    candidate_report report;
    report.source = std::move(source);
    report.local = local;
    auto fingerprint = fingerprint_of(primary);
    report.fingerprint = util::ascii_lower(fingerprint);
    auto primary_algorithm = algorithm_of(primary);
    report.key_description = describe(primary_algorithm);
    std::uint32_t created = 0;
    if (rnp_key_get_creation(primary, &created) == RNP_SUCCESS) {
        report.not_before = clock::from_time_t(static_cast<std::time_t>(created));
    }
    if (auto till = valid_till(primary); till && *till != 0) {
        report.not_after = clock::from_time_t(static_cast<std::time_t>(*till));
    }
    auto ids = user_ids_of(primary, address);
    report.names = ids.all;
    report.subject = rnp_string([&](char** s) { return rnp_key_get_primary_uid(primary, s); });
    if (report.subject.empty() && !ids.all.empty()) {
        report.subject = ids.all.front();
    }
    note_key_times(primary, now, ev);
    auto index = ev.reports.size();
    auto finish = [&](std::string why) {
        report.why = std::move(why);
        ev.reports.push_back(std::move(report));
    };

    // A version 4 key has a 20-octet (SHA-1) fingerprint; version 3 keys (16 octets, MD5)
    // are deprecated by RFC 4880 §5.5.2 and no current reader makes them.
    if (fingerprint.size() != 40) {
        return finish(fingerprint.size() == 32 ? "a version 3 key: not accepted"
                                               : "not a version 4 key: not accepted");
    }
    if (auto problem = validity_problem(primary, now); !problem.empty()) {
        return finish("key " + problem);
    }
    if (!ids.names_it) {
        std::string why = "no valid user ID names " + std::string(address) + " (RFC 7929 §5)";
        if (!ids.all.empty()) {
            why += "; it names ";
            for (std::size_t i = 0; i < ids.all.size(); ++i) {
                why += (i == 0 ? "" : ", ") + ids.all[i];
            }
        }
        return finish(why);
    }

    // The primary first, then each subkey: every encryption-capable one is a candidate.
    std::vector<c_ptr<rnp_key_handle_st>> subkeys;
    std::size_t count = 0;
    rnp_key_get_subkey_count(primary, &count);
    for (std::size_t i = 0; i < count; ++i) {
        rnp_key_handle_t raw = nullptr;
        if (rnp_key_get_subkey_at(primary, i, &raw) == RNP_SUCCESS && raw != nullptr) {
            subkeys.emplace_back(raw);
            note_key_times(raw, now, ev);
        }
    }
    std::vector<rnp_key_handle_t> candidates{primary};
    for (const auto& s : subkeys) {
        candidates.push_back(s.get());
    }
    std::string findings;
    std::vector<std::string> used;
    bool any_capable = false;
    std::shared_ptr<const std::vector<std::uint8_t>> exported;
    for (auto* k : candidates) {
        bool encrypts = false;
        if (rnp_key_allows_usage(k, "encrypt", &encrypts) != RNP_SUCCESS || !encrypts) {
            continue;
        }
        any_capable = true;
        auto fpr = fingerprint_of(k);
        auto what = (k == primary ? "primary key " : "subkey ") + key_id(fpr);
        auto a = algorithm_of(k);
        std::string problem = k == primary ? std::string() : validity_problem(k, now);
        if (problem.empty()) {
            problem = algorithm_problem(a);
        }
        if (!problem.empty()) {
            append_finding(findings, what + ": " + problem);
            continue;
        }
        if (!exported) {
            // The whole transferable key, binary: what the encoder imports again.
            rnp_output_t raw_out = nullptr;
            rnp_output_to_memory(&raw_out, 0);
            c_ptr<rnp_output_st> out(raw_out);
            std::uint8_t* buf = nullptr;
            std::size_t len = 0;
            if (!out ||
                rnp_key_export(primary, out.get(),
                               RNP_KEY_EXPORT_PUBLIC | RNP_KEY_EXPORT_SUBKEYS) != RNP_SUCCESS ||
                rnp_output_memory_get_buf(out.get(), &buf, &len, false) != RNP_SUCCESS) {
                append_finding(findings, what + ": librnp could not export the key");
                ev.provisional = true;
                continue;
            }
            exported = std::make_shared<const std::vector<std::uint8_t>>(buf, buf + len);
        }
        auto material = std::make_shared<encryption_key>();
        material->transferable_key = exported;
        material->fingerprint = fpr;
        key usable;
        usable.material = std::move(material);
        usable.source = report.source + " " + what;
        usable.algorithm = token(a);
        usable.bits = a.bits;
        usable.fingerprint = util::ascii_lower(fpr);
        if (auto till = valid_till(k); till && *till != 0) {
            usable.expires = clock::from_time_t(static_cast<std::time_t>(*till));
        }
        used.push_back(what + " (" + describe(a) + ")");
        found.push_back({std::move(usable), index});
    }
    if (used.empty()) {
        std::string why = any_capable ? "no usable encryption key"
                                      : "no encryption-capable key "
                                        "(a signing-only key)";
        append_finding(why, findings);
        return finish(why);
    }
    report.usable = true;
    std::string why = "encrypts to ";
    for (std::size_t i = 0; i < used.size(); ++i) {
        why += (i == 0 ? "" : ", ") + used[i];
    }
    append_finding(why, findings);
    finish(why);
}

/// What librnp says it imported (rnp_import_keys' results): each key's fingerprint, and
/// whether secret key material came with any of them.
struct import_listing {
    std::vector<std::string> fingerprints;
    bool secret = false;
};

import_listing parse_import_results(const char* results) {
    import_listing out;
    auto doc = nlohmann::json::parse(results == nullptr ? "" : results, nullptr, false);
    if (!doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array()) {
        return out;
    }
    for (const auto& k : doc["keys"]) {
        if (!k.is_object()) {
            continue;
        }
        if (k.contains("fingerprint") && k["fingerprint"].is_string()) {
            out.fingerprints.push_back(k["fingerprint"].get<std::string>());
        }
        if (k.contains("secret") && k["secret"].is_string() && k["secret"] != "none") {
            out.secret = true;
        }
    }
    return out;
}

/// The sources of one kind (the records of one DNS answer, or one user's local files) imported
/// into one librnp context, as GnuPG merges them in its keyring: a revocation or a new subkey
/// that one source carries applies wherever else the same key appears, so a stale copy of a
/// revoked key is never used.
struct key_group {
    c_ptr<rnp_ffi_st> ffi;
    /// Per source, in the caller's order: why it was refused (empty when it was not) ...
    std::vector<std::string> refused;
    /// ... whether it held only signatures (a revocation certificate), applied to the others ...
    std::vector<bool> signatures_only;
    /// ... and otherwise the primary keys it holds, in import order.
    std::vector<std::vector<std::string>> primaries;
    /// librnp could not be set up: every source was refused for a reason that may pass.
    bool setup_failed = false;
};

c_ptr<rnp_input_st> input_of(const key_data& data) {
    rnp_input_t raw = nullptr;
    rnp_input_from_memory(&raw, data.bytes.data(), data.bytes.size(), false);
    return c_ptr<rnp_input_st>(raw);
}

/// Imports every source into a fresh context whose clock is `now`. A source refused after it
/// was imported (a secret key, several keys in one record) would leave its packets behind, so
/// the group is then built again without it: at most once per source, and only for bad input.
key_group build_group(const std::vector<key_data>& sources, std::uint64_t now) {
    std::vector<std::string> refused(sources.size());
    for (;;) {
        key_group g;
        g.refused = refused;
        g.signatures_only.assign(sources.size(), false);
        g.primaries.assign(sources.size(), {});
        rnp_ffi_t raw_ffi = nullptr;
        if (rnp_ffi_create(&raw_ffi, "GPG", "GPG") != RNP_SUCCESS) {
            std::fill(g.refused.begin(), g.refused.end(), "librnp could not be set up");
            g.setup_failed = true;
            return g;
        }
        g.ffi.reset(raw_ffi);
        rnp_set_timestamp(g.ffi.get(), now);
        std::optional<std::size_t> refuse_after_import;
        std::string why_after_import;
        for (std::size_t i = 0; i < sources.size() && !refuse_after_import; ++i) {
            const auto& data = sources[i];
            if (!g.refused[i].empty()) {
                continue;
            }
            if (data.bytes.empty()) {
                g.refused[i] = "empty";
                continue;
            }
            // RFC 7929 §2.1: the RDATA is the binary key; a packet header always has bit 7 set.
            if (data.record && (data.bytes.front() & 0x80) == 0) {
                g.refused[i] = "not a binary OpenPGP key (RFC 7929 §2.1 wants the Transferable "
                               "Public Key, not ASCII armour)";
                continue;
            }
            auto in = input_of(data);
            if (!in) {
                g.refused[i] = "librnp could not read it";
                continue;
            }
            auto contents =
                rnp_string([&](char** out) { return rnp_guess_contents(in.get(), out); });
            if (contents == "signature") {
                g.signatures_only[i] = true;
                continue;
            }
            if (contents == "secret key") {
                g.refused[i] = "holds a secret key: not read (only public keys belong here)";
                continue;
            }
            if (contents != "public key") {
                g.refused[i] =
                    "does not parse as an OpenPGP public key" +
                    (contents.empty() || contents == "unknown" ? std::string()
                                                               : " (it is a " + contents + ")");
                continue;
            }
            char* raw_results = nullptr;
            // Secret keys are asked for only to notice them: a public key followed by its
            // secret key must not pass as a public one.
            auto rc = rnp_import_keys(g.ffi.get(), in.get(),
                                      RNP_LOAD_SAVE_PUBLIC_KEYS | RNP_LOAD_SAVE_SECRET_KEYS,
                                      &raw_results);
            c_ptr<char> results(raw_results);
            if (rc != RNP_SUCCESS) {
                refuse_after_import = i;
                why_after_import =
                    std::string("does not parse as an OpenPGP public key (librnp: ") +
                    rnp_result_to_string(rc) + ")";
                break;
            }
            auto listing = parse_import_results(results.get());
            if (listing.secret) {
                refuse_after_import = i;
                why_after_import = "holds a secret key: not read (only public keys belong here)";
                break;
            }
            for (const auto& fpr : listing.fingerprints) {
                rnp_key_handle_t raw_key = nullptr;
                if (rnp_locate_key(g.ffi.get(), "fingerprint", fpr.c_str(), &raw_key) !=
                        RNP_SUCCESS ||
                    raw_key == nullptr) {
                    continue;
                }
                c_ptr<rnp_key_handle_st> k(raw_key);
                auto& mine = g.primaries[i];
                if (flag(&rnp_key_is_primary, k.get()) &&
                    std::find(mine.begin(), mine.end(), fpr) == mine.end()) {
                    mine.push_back(fpr);
                }
            }
            if (g.primaries[i].empty()) {
                refuse_after_import = i;
                why_after_import = "holds no primary key";
            } else if (data.record && g.primaries[i].size() > 1) {
                refuse_after_import = i;
                why_after_import = "holds " + std::to_string(g.primaries[i].size()) +
                                   " keys; an OPENPGPKEY record holds one (RFC 7929 §2.1)";
            }
        }
        if (refuse_after_import) {
            refused[*refuse_after_import] = why_after_import;
            continue;
        }
        for (std::size_t i = 0; i < sources.size(); ++i) {
            if (!g.signatures_only[i]) {
                continue;
            }
            auto in = input_of(sources[i]);
            if (!in || rnp_import_signatures(g.ffi.get(), in.get(), 0, nullptr) != RNP_SUCCESS) {
                refuse_after_import = i;
                why_after_import = "holds signatures that librnp could not read";
                break;
            }
        }
        if (refuse_after_import) {
            refused[*refuse_after_import] = why_after_import;
            continue;
        }
        return g;
    }
}

/// Reports on every source of one kind and examines each primary key they hold, as the group
/// merged it. Returns whether any source held a key.
bool judge_group(const std::vector<key_data>& sources, std::string_view address, std::uint64_t now,
                 evaluation& ev, std::vector<found_key>& found) {
    auto g = build_group(sources, now);
    ev.provisional = ev.provisional || g.setup_failed;
    bool any_key = false;
    for (std::size_t i = 0; i < sources.size(); ++i) {
        const auto& data = sources[i];
        bool local = !data.record;
        if (!g.refused[i].empty() || g.signatures_only[i]) {
            candidate_report r;
            r.source = data.source;
            r.local = local;
            if (!g.refused[i].empty()) {
                r.why = g.refused[i];
                (local ? ev.local_problems : ev.reports).push_back(std::move(r));
            } else {
                r.why = std::string("signatures only (a revocation certificate): applied to the ") +
                        (local ? "keys in the other files" : "keys in the other records");
                ev.reports.push_back(std::move(r));
            }
            continue;
        }
        any_key = true;
        const auto& primaries = g.primaries[i];
        for (std::size_t j = 0; j < primaries.size(); ++j) {
            rnp_key_handle_t raw_key = nullptr;
            rnp_locate_key(g.ffi.get(), "fingerprint", primaries[j].c_str(), &raw_key);
            c_ptr<rnp_key_handle_st> primary(raw_key);
            if (!primary) {
                continue;
            }
            auto source =
                j == 0 ? data.source : data.source + " (key " + std::to_string(j + 1) + ")";
            examine(primary.get(), std::move(source), local, address, now, ev, found);
        }
    }
    return any_key;
}

/// De-duplicates by the encryption key's fingerprint and marks the reports of the keys used.
std::vector<key> choose(std::vector<found_key> found, std::vector<candidate_report>& reports) {
    std::vector<key> out;
    for (auto& f : found) {
        auto same = std::find_if(out.begin(), out.end(),
                                 [&](const key& k) { return k.fingerprint == f.k.fingerprint; });
        reports[f.report].in_use = true;
        if (same != out.end()) {
            append_finding(reports[f.report].why, "same key as " + same->source);
            continue;
        }
        reports[f.report].selected = true;
        out.push_back(std::move(f.k));
    }
    return out;
}

} // namespace

bool names_address(std::string_view uid, std::string_view address) {
    auto named = address_in(uid);
    auto at = named.rfind('@');
    auto want_at = address.rfind('@');
    if (at == std::string::npos || want_at == std::string_view::npos) {
        return false;
    }
    auto domain = dns::to_a_label(std::string_view(named).substr(at + 1));
    return domain && *domain == address.substr(want_at + 1) &&
           util::iequals(std::string_view(named).substr(0, at), address.substr(0, want_at));
}

std::string encryption_problem(rnp_key_handle_t key, clock::time_point now) {
    bool encrypts = false;
    if (rnp_key_allows_usage(key, "encrypt", &encrypts) != RNP_SUCCESS || !encrypts) {
        return "its key flags do not allow encryption";
    }
    if (auto problem = validity_problem(key, seconds(now)); !problem.empty()) {
        return problem;
    }
    return algorithm_problem(algorithm_of(key));
}

const encryption_key* encryption_key_of(const key& k) {
    return dynamic_cast<const encryption_key*>(k.material.get());
}

evaluation evaluate(const std::vector<key_data>& secure_records,
                    const std::vector<key_data>& local_files, std::string_view address,
                    clock::time_point now) {
    evaluation ev;
    auto t = seconds(now);
    std::vector<found_key> from_records;
    bool any_parses = judge_group(secure_records, address, t, ev, from_records);
    std::vector<found_key> from_store;
    auto first_local = ev.reports.size();
    judge_group(local_files, address, t, ev, from_store);
    bool records_win = !secure_records.empty() && any_parses;
    if (secure_records.empty()) {
        ev.decision = "no secure OPENPGPKEY records: local key store";
    } else if (records_win) {
        ev.decision = "secure OPENPGPKEY answer: keys from the records";
        from_store.clear();
    } else {
        ev.decision = "secure OPENPGPKEY answer without a key that parses: local key store";
    }
    auto found = std::move(from_records);
    std::move(from_store.begin(), from_store.end(), std::back_inserter(found));
    ev.keys = choose(std::move(found), ev.reports);
    if (records_win) {
        for (auto i = first_local; i < ev.reports.size(); ++i) {
            auto& r = ev.reports[i];
            // The same key as a record that is used: it is in use, only not from this file.
            auto record = std::find_if(ev.reports.begin(), ev.reports.begin() + first_local,
                                       [&](const candidate_report& c) {
                                           return c.in_use && !r.fingerprint.empty() &&
                                                  c.fingerprint == r.fingerprint;
                                       });
            if (record != ev.reports.begin() + first_local) {
                r.in_use = true;
                r.usable = false;
                r.why = "the same key as " + record->source + ", which is used; " + r.why;
            } else if (r.usable) {
                r.usable = false;
                r.why = "not used: a secure OPENPGPKEY answer takes precedence over the local "
                        "store; " +
                        r.why;
            }
        }
    }
    return ev;
}

evaluation select_keys(dns::outcome outcome, const std::vector<key_data>& records,
                       const std::vector<key_data>& local_files, std::string_view address,
                       clock::time_point now) {
    switch (outcome) {
    case dns::outcome::secure_records:
        return evaluate(records, local_files, address, now);
    case dns::outcome::secure_absent: {
        auto ev = evaluate({}, local_files, address, now);
        ev.decision = "no OPENPGPKEY record (DNSSEC-secure absence): local key store";
        return ev;
    }
    case dns::outcome::insecure: {
        // RFC 7929 §7 (as RFC 6698 §4.1): an insecure answer counts as no answer.
        auto ev = evaluate({}, local_files, address, now);
        ev.decision = "OPENPGPKEY lookup insecure (zone not signed): local key store";
        return ev;
    }
    case dns::outcome::bogus:
    case dns::outcome::failure: {
        evaluation ev;
        ev.decision = refusal_decision("OPENPGPKEY", outcome);
        return ev;
    }
    }
    return {};
}

file_content read_key_file(const std::filesystem::path& file) {
    file_content out;
    auto problem = [&](std::string why) {
        candidate_report r;
        r.local = true;
        r.source = "local " + file.string();
        r.why = std::move(why);
        out.problem = std::move(r);
        return out;
    };
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return problem("cannot open: " + util::errno_text(errno));
    }
    key_data data;
    data.source = "local " + file.string();
    std::array<char, 8192> buf{};
    while (in.read(buf.data(), buf.size()) || in.gcount() > 0) {
        data.bytes.insert(data.bytes.end(), buf.data(), buf.data() + in.gcount());
        if (data.bytes.size() > max_file_size) {
            return problem("larger than " + std::to_string(max_file_size / 1024) + " KiB");
        }
    }
    if (in.bad()) {
        return problem("read error");
    }
    out.data = std::move(data);
    return out;
}

bool looks_like_key(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::string head(64 * 1024, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<std::size_t>(std::max<std::streamsize>(in.gcount(), 0)));
    if (head.find("-----BEGIN PGP PUBLIC KEY BLOCK-----") != std::string::npos) {
        return true;
    }
    if (head.empty()) {
        return false;
    }
    // A binary public-key packet: tag 6 in the old format (0x98-0x9b) or the new (0xc6).
    auto first = static_cast<unsigned char>(head.front());
    return (first & 0xfc) == 0x98 || first == 0xc6;
}

} // namespace mailseal::seal::openpgp
