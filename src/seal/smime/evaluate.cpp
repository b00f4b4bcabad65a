// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <utility>

#include <openssl/err.h>

#include <mailseal/seal/smime/evaluate.hpp>
#include <mailseal/util/ascii.hpp>

#include "inspect.hpp"

namespace mailseal::seal::smime {

std::optional<smimea_record> parse_smimea_rdata(std::span<const std::uint8_t> rdata) {
    // RFC 6698 §2.1: usage (1 octet), selector (1), matching type (1), association data.
    if (rdata.size() < 3) {
        return std::nullopt;
    }
    return smimea_record{rdata[0], rdata[1], rdata[2], {rdata.begin() + 3, rdata.end()}};
}

std::string to_presentation(const smimea_record& record) {
    std::string out = std::to_string(record.usage) + " " + std::to_string(record.selector) + " " +
                      std::to_string(record.matching_type);
    if (!record.data.empty()) {
        out += " " + detail::upper_hex(record.data);
    }
    return out;
}

const certificate_key* certificate_of(const key& k) {
    return dynamic_cast<const certificate_key*>(k.material.get());
}

std::string_view to_string(key_type t) {
    switch (t) {
    case key_type::rsa:
        return "rsa";
    case key_type::ec_p256:
        return "ec-p256";
    case key_type::ec_p384:
        return "ec-p384";
    }
    return "unknown";
}

namespace {

using detail::bytes;

// RFC 6698 §2.1.1-§2.1.3 field values (mnemonics from RFC 7218).
constexpr std::uint8_t usage_pkix_ta = 0;
constexpr std::uint8_t usage_pkix_ee = 1;
constexpr std::uint8_t usage_dane_ta = 2;
constexpr std::uint8_t usage_dane_ee = 3;
constexpr std::uint8_t selector_cert = 0;
constexpr std::uint8_t selector_spki = 1;
constexpr std::uint8_t matching_full = 0;
constexpr std::uint8_t matching_sha256 = 1;
constexpr std::uint8_t matching_sha512 = 2;

/// Whether a candidate can be used, with the reason either way.
struct verdict {
    bool usable = false;
    std::string why;
    /// It rests on a failure that may pass (evaluation::provisional).
    bool provisional = false;
};

/// What chain_problem says when OpenSSL could not even start the validation (out of memory).
constexpr std::string_view chain_setup_failed = "PKIX validation could not be set up";

verdict unusable(std::string why) {
    return {false, std::move(why)};
}

std::string record_source(std::size_t index, const smimea_record& r) {
    return "smimea #" + std::to_string(index + 1) + " " + std::to_string(r.usage) + " " +
           std::to_string(r.selector) + " " + std::to_string(r.matching_type);
}

/// RFC 5280 §7.5: the domain part of an rfc822Name compares case-insensitively, the local part
/// exactly.
bool same_address(std::string_view a, std::string_view b) {
    auto at_a = a.rfind('@');
    auto at_b = b.rfind('@');
    if (at_a == std::string_view::npos || at_b == std::string_view::npos) {
        return false;
    }
    return a.substr(0, at_a) == b.substr(0, at_b) &&
           util::iequals(a.substr(at_a + 1), b.substr(at_b + 1));
}

std::string address_problem(X509& cert, std::string_view address) {
    auto emails = detail::san_emails(cert);
    if (std::any_of(emails.begin(), emails.end(),
                    [&](const std::string& e) { return same_address(e, address); })) {
        return {};
    }
    std::string why = "no rfc822Name subjectAltName for " + std::string(address);
    if (emails.empty()) {
        return why + " (the certificate has none)";
    }
    why += " (it names ";
    for (std::size_t i = 0; i < emails.size(); ++i) {
        why += (i == 0 ? "" : ", ") + emails[i];
    }
    return why + ")";
}

/// RFC 8550 §4.4.2 and RFC 5480 §3: keyEncipherment for RSA key transport, keyAgreement for
/// ECDH. Checked per key type here: OpenSSL's X509_PURPOSE_SMIME_ENCRYPT demands
/// keyEncipherment of every key and so rejects correct EC certificates.
std::string key_usage_problem(X509& cert, key_type type) {
    std::uint32_t usage = X509_get_key_usage(&cert);
    if (usage == UINT32_MAX) {
        return {}; // no keyUsage extension: every use is allowed
    }
    if (type == key_type::rsa && (usage & KU_KEY_ENCIPHERMENT) == 0) {
        return "keyUsage lacks keyEncipherment";
    }
    if (type != key_type::rsa && (usage & KU_KEY_AGREEMENT) == 0) {
        return "keyUsage lacks keyAgreement";
    }
    return {};
}

/// RFC 8550 §4.4.4: an extKeyUsage extension, if present, must allow emailProtection
/// (anyExtendedKeyUsage allows everything, RFC 5280 §4.2.1.12).
std::string extended_key_usage_problem(X509& cert) {
    std::uint32_t usage = X509_get_extended_key_usage(&cert);
    if (usage == UINT32_MAX || (usage & (XKU_SMIME | XKU_ANYEKU)) != 0) {
        return {};
    }
    return "extKeyUsage lacks emailProtection";
}

std::string validity_problem(X509& cert, std::time_t now) {
    auto not_before = detail::to_time(X509_get0_notBefore(&cert));
    auto not_after = detail::to_time(X509_get0_notAfter(&cert));
    if (!not_before || !not_after) {
        return "validity dates do not parse";
    }
    if (now > *not_after) {
        return "expired " + detail::iso_date(*not_after);
    }
    if (now < *not_before) {
        return "not valid before " + detail::iso_date(*not_before);
    }
    return {};
}

std::string chain_problem(X509& cert, X509_STORE& store, std::time_t now) {
    c_ptr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
    if (!ctx || X509_STORE_CTX_init(ctx.get(), &store, &cert, nullptr) != 1) {
        ERR_clear_error();
        return std::string(chain_setup_failed);
    }
    X509_STORE_CTX_set_time(ctx.get(), 0, now);
    int ok = X509_verify_cert(ctx.get());
    int error = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    if (ok == 1) {
        return {};
    }
    return std::string("does not validate against keys.smime_ca_file: ") +
           X509_verify_cert_error_string(error);
}

/// The checks every certificate passes: extensions that parse, a usable key, keyUsage.
std::string key_problem(X509& cert) {
    if ((X509_get_extension_flags(&cert) & EXFLAG_INVALID) != 0) {
        return "certificate extensions do not parse";
    }
    EVP_PKEY* key = X509_get0_pubkey(&cert);
    if (key == nullptr) {
        return "public key does not parse";
    }
    auto cls = detail::classify(*key);
    if (!cls.type) {
        return cls.unusable;
    }
    return key_usage_problem(cert, *cls.type);
}

/// DANE-EE (usage 3): the DNSSEC-signed record binds the certificate to the address, so names
/// and dates are not checked (RFC 7671 §5.1); an expired certificate is only noted unless the
/// configuration says otherwise. The key and keyUsage are checked: mail sealed to a key its
/// holder cannot decrypt with is lost.
verdict check_dane_ee(X509& cert, const trust& pol, std::time_t now) {
    if (auto problem = key_problem(cert); !problem.empty()) {
        return unusable(problem);
    }
    verdict v{true, "DANE-EE certificate"};
    if (auto dates = validity_problem(cert, now); !dates.empty()) {
        if (!pol.accept_expired_dane_ee) {
            return unusable(dates + " (keys.accept_expired_dane_ee is false)");
        }
        append_finding(v.why, dates + " (accepted: DANE-EE)");
    }
    return v;
}

/// PKIX-EE (usage 1) and the local store: RFC 5280 validation (a chain to keys.smime_ca_file
/// for usage 1; for the operator's own store only the dates) plus the S/MIME profile of RFC
/// 8550: the address in an rfc822Name (§3), keyUsage (§4.4.2), extKeyUsage (§4.4.4).
verdict check_pkix(X509& cert, const trust& pol, std::string_view address, std::time_t now,
                   bool chain) {
    if (chain && !pol.smime_cas) {
        return unusable("usage 1 (PKIX-EE) needs keys.smime_ca_file, which is not configured");
    }
    for (const auto& problem :
         {key_problem(cert), extended_key_usage_problem(cert), address_problem(cert, address)}) {
        if (!problem.empty()) {
            return unusable(problem);
        }
    }
    if (chain) {
        if (auto problem = chain_problem(cert, *pol.smime_cas, now); !problem.empty()) {
            auto v = unusable(problem);
            v.provisional = problem == chain_setup_failed;
            return v;
        }
        return {true, "PKIX-EE certificate validated against keys.smime_ca_file"};
    }
    if (auto problem = validity_problem(cert, now); !problem.empty()) {
        return unusable(problem);
    }
    return {true, "local certificate for " + std::string(address)};
}

/// A usable key while the candidates are compared; it becomes a seal::key once chosen.
struct found_key {
    std::shared_ptr<certificate_key> material;
    int bits = 0;
    std::string source;
};

std::optional<found_key> make_key(std::shared_ptr<EVP_PKEY> public_key, std::shared_ptr<X509> cert,
                                  std::string source) {
    if (!public_key) {
        return std::nullopt;
    }
    auto cls = detail::classify(*public_key);
    if (!cls.type) {
        return std::nullopt;
    }
    auto material = std::make_shared<certificate_key>();
    material->spki_der = detail::public_key_der(*public_key);
    material->public_key = std::move(public_key);
    material->certificate = std::move(cert);
    material->type = *cls.type;
    return found_key{std::move(material), cls.bits, std::move(source)};
}

std::optional<found_key> key_of(const std::shared_ptr<X509>& cert, std::string source) {
    return make_key(share_borrowed(X509_get0_pubkey(cert.get())), cert, std::move(source));
}

key to_key(found_key f) {
    key k;
    k.algorithm = std::string(to_string(f.material->type));
    k.bits = f.bits;
    k.fingerprint = detail::hex(detail::digest(EVP_sha256(), f.material->spki_der));
    if (f.material->certificate) {
        if (auto t = detail::to_time(X509_get0_notAfter(f.material->certificate.get()))) {
            k.expires = std::chrono::system_clock::from_time_t(*t);
        }
    }
    k.source = std::move(f.source);
    k.material = std::move(f.material);
    return k;
}

/// One record, examined on its own.
struct record_result {
    candidate_report report;
    /// Usable in the RFC 6698 §4.1 sense: known usage, selector and matching type, and data
    /// that parses (or has the digest's length).
    bool well_formed = false;
    /// It may confirm local certificates (usage 1 or 3, well formed).
    bool confirms = false;
    /// It confirms by digest or bare key only, giving no key of its own.
    bool confirm_only = false;
    /// Its verdict rests on a failure that may pass.
    bool provisional = false;
    std::optional<found_key> k;
};

record_result examine(std::size_t index, const smimea_record& r, const trust& pol,
                      std::string_view address, std::time_t now) {
    record_result out;
    out.report.source = record_source(index, r);
    auto& why = out.report.why;
    // RFC 6698 §4.1: a record with an unknown usage, selector or matching type is unusable.
    if (r.usage > usage_dane_ee) {
        why = "unknown usage " + std::to_string(r.usage) + " (RFC 6698 §4.1: unusable)";
        return out;
    }
    if (r.selector > selector_spki) {
        why = "unknown selector " + std::to_string(r.selector) + " (RFC 6698 §4.1: unusable)";
        return out;
    }
    if (r.matching_type > matching_sha512) {
        why = "unknown matching type " + std::to_string(r.matching_type) +
              " (RFC 6698 §4.1: unusable)";
        return out;
    }

    std::shared_ptr<X509> cert;
    std::shared_ptr<EVP_PKEY> bare_key;
    if (r.matching_type == matching_full && r.selector == selector_cert) {
        auto parsed = detail::parse_certificate_der(r.data);
        if (!parsed.certificate) {
            why = parsed.error;
            return out;
        }
        cert = share(std::move(parsed.certificate));
        out.report = describe(*cert, out.report.source);
    } else if (r.matching_type == matching_full) {
        auto parsed = detail::parse_spki_der(r.data);
        if (!parsed.key) {
            why = parsed.error;
            return out;
        }
        bare_key = share(std::move(parsed.key));
        out.report.key_description = detail::classify(*bare_key).description;
        out.report.fingerprint = detail::hex(detail::digest(EVP_sha256(), r.data));
    } else {
        std::size_t want = r.matching_type == matching_sha256 ? 32 : 64;
        if (r.data.size() != want) {
            why = std::string(r.matching_type == matching_sha256 ? "SHA-256" : "SHA-512") +
                  " data is " + std::to_string(r.data.size()) + " bytes, want " +
                  std::to_string(want);
            return out;
        }
    }
    out.well_formed = true;

    // RFC 8162 §2 keeps TLSA's usages; 0 and 2 name a CA or trust anchor, not the user's key.
    if (r.usage == usage_pkix_ta || r.usage == usage_dane_ta) {
        why = "usage " + std::to_string(r.usage) +
              (r.usage == usage_pkix_ta ? " (PKIX-TA)" : " (DANE-TA)") + " is not a recipient key";
        return out;
    }
    out.confirms = true;
    if (cert) {
        auto v = r.usage == usage_dane_ee ? check_dane_ee(*cert, pol, now)
                                          : check_pkix(*cert, pol, address, now, true);
        out.report.usable = v.usable;
        out.provisional = v.provisional;
        why = v.why;
        if (v.usable) {
            out.k = key_of(cert, out.report.source);
        }
        return out;
    }
    if (bare_key && r.usage == usage_dane_ee) {
        auto cls = detail::classify(*bare_key);
        if (!cls.type) {
            why = cls.unusable;
            return out;
        }
        out.report.usable = true;
        why = "DANE-EE bare public key: the RecipientInfo names it by subjectKeyIdentifier, and "
              "without a certificate keyUsage cannot be checked";
        out.k = make_key(bare_key, nullptr, out.report.source);
        return out;
    }
    // Digests, and a bare key under PKIX-EE (nothing to validate on its own): these only
    // confirm certificates from the local store; evaluate() fills in the outcome.
    out.confirm_only = true;
    return out;
}

std::string confirm_text(const smimea_record& r) {
    std::string what = r.selector == selector_cert ? "the certificate" : "the public key";
    if (r.matching_type == matching_sha256) {
        return "SHA-256 of " + what;
    }
    if (r.matching_type == matching_sha512) {
        return "SHA-512 of " + what;
    }
    return what;
}

bool matches(X509& cert, const smimea_record& r) {
    auto data = association_data(cert, r.selector, r.matching_type);
    return data && *data == r.data;
}

struct candidate {
    found_key k;
    std::size_t report;
    /// The reports of candidates dropped for having the same public key.
    std::vector<std::size_t> duplicates;
};

/// De-duplicates by SPKI (keeping a certificate over a bare key, else the first), applies the
/// RSA preference, and marks the reports of the keys that remain.
std::vector<key> choose(std::vector<candidate> candidates, std::vector<candidate_report>& reports,
                        config::key_preference preference) {
    std::vector<candidate> kept;
    for (auto& c : candidates) {
        auto same = std::find_if(kept.begin(), kept.end(), [&](const candidate& k) {
            return k.k.material->spki_der == c.k.material->spki_der;
        });
        if (same == kept.end()) {
            kept.push_back(std::move(c));
        } else if (!same->k.material->certificate && c.k.material->certificate) {
            append_finding(reports[same->report].why, "same public key as " + c.k.source);
            c.duplicates = std::move(same->duplicates);
            c.duplicates.push_back(same->report);
            *same = std::move(c);
        } else {
            append_finding(reports[c.report].why, "same public key as " + same->k.source);
            same->duplicates.push_back(c.report);
        }
    }
    bool any_rsa = std::any_of(kept.begin(), kept.end(), [](const candidate& c) {
        return c.k.material->type == key_type::rsa;
    });
    if (preference == config::key_preference::rsa_only_if_any && any_rsa) {
        // One key-agreement RecipientInfo makes NSS (Thunderbird) fail to open the message even
        // for the holder of an RSA key, so EC keys are left out when RSA ones exist.
        std::erase_if(kept, [&](const candidate& c) {
            if (c.k.material->type == key_type::rsa) {
                return false;
            }
            append_finding(reports[c.report].why,
                           "not used: RSA keys exist and keys.preference is rsa-only-if-any");
            return true;
        });
    }
    std::vector<key> out;
    for (auto& c : kept) {
        reports[c.report].selected = true;
        reports[c.report].in_use = true;
        for (auto d : c.duplicates) {
            reports[d].in_use = true;
        }
        out.push_back(to_key(std::move(c.k)));
    }
    return out;
}

evaluation combine(const std::vector<smimea_record>& records, std::vector<record_result> results,
                   const std::vector<local_certificate>& local_certs, const trust& pol,
                   std::string_view address, std::time_t now) {
    evaluation ev;
    std::vector<candidate> candidates;
    bool dns_binds = std::any_of(results.begin(), results.end(),
                                 [](const record_result& r) { return r.well_formed; });
    for (auto& r : results) {
        if (r.k) {
            candidates.push_back({std::move(*r.k), ev.reports.size(), {}});
        }
        ev.provisional = ev.provisional || r.provisional;
        ev.reports.push_back(std::move(r.report));
    }
    if (results.empty()) {
        ev.decision = "no secure SMIMEA records: local certificate store";
    } else if (dns_binds) {
        ev.decision = "secure SMIMEA answer: keys from the records and the local certificates "
                      "they confirm";
    } else {
        ev.decision = "secure SMIMEA answer without a usable record (RFC 6698 §4.1): local "
                      "certificate store";
    }

    // Which local certificates (by report index) each confirm-only record matched.
    std::vector<std::vector<std::size_t>> confirmed(results.size());
    for (const auto& local : local_certs) {
        if (!local.certificate) {
            continue;
        }
        auto report = describe(*local.certificate, "local " + local.path.string());
        report.local = true;
        verdict v;
        if (!dns_binds) {
            v = check_pkix(*local.certificate, pol, address, now, false);
        } else {
            // A usage-3 confirmation binds like DANE-EE; a usage-1 one still needs PKIX.
            std::optional<std::size_t> by;
            for (std::size_t i = 0; i < results.size(); ++i) {
                if (!results[i].confirms || !matches(*local.certificate, records[i])) {
                    continue;
                }
                if (results[i].confirm_only) {
                    confirmed[i].push_back(ev.reports.size());
                }
                if (!by ||
                    (records[*by].usage != usage_dane_ee && records[i].usage == usage_dane_ee)) {
                    by = i;
                }
            }
            if (!by) {
                v = unusable("not confirmed by any SMIMEA record: a secure SMIMEA answer takes "
                             "precedence over the local store");
            } else {
                v = records[*by].usage == usage_dane_ee
                        ? check_dane_ee(*local.certificate, pol, now)
                        : check_pkix(*local.certificate, pol, address, now, true);
                v.why = "confirmed by " + record_source(*by, records[*by]) + ": " + v.why;
            }
        }
        report.usable = v.usable;
        report.why = v.why;
        ev.provisional = ev.provisional || v.provisional;
        if (v.usable) {
            if (auto k = key_of(local.certificate, report.source)) {
                candidates.push_back({std::move(*k), ev.reports.size(), {}});
            }
        }
        ev.reports.push_back(std::move(report));
    }

    ev.keys = choose(std::move(candidates), ev.reports, pol.preference);

    for (std::size_t i = 0; i < results.size(); ++i) {
        if (!results[i].confirm_only) {
            continue;
        }
        auto& report = ev.reports[i];
        report.why = confirm_text(records[i]);
        if (confirmed[i].empty()) {
            report.why += " matches no local certificate";
            continue;
        }
        report.why += " matches";
        std::string matched;
        for (auto index : confirmed[i]) {
            const auto& local = ev.reports[index];
            report.usable = report.usable || local.usable;
            report.selected = report.selected || local.selected;
            report.in_use = report.in_use || local.in_use;
            matched += (matched.empty() ? " " : ", ") + local.source;
        }
        report.why += matched;
        if (!report.usable) {
            report.why += ", which is not usable";
        }
    }
    return ev;
}

std::vector<record_result> examine_all(const std::vector<smimea_record>& records, const trust& pol,
                                       std::string_view address, std::time_t now) {
    std::vector<record_result> out;
    out.reserve(records.size());
    for (std::size_t i = 0; i < records.size(); ++i) {
        out.push_back(examine(i, records[i], pol, address, now));
    }
    return out;
}

} // namespace

candidate_report describe(X509& cert, std::string source) {
    candidate_report r;
    r.source = std::move(source);
    r.subject = detail::subject_text(cert);
    r.names = detail::san_emails(cert);
    if (EVP_PKEY* key = X509_get0_pubkey(&cert)) {
        r.key_description = detail::classify(*key).description;
    }
    if (auto t = detail::to_time(X509_get0_notBefore(&cert))) {
        r.not_before = std::chrono::system_clock::from_time_t(*t);
    }
    if (auto t = detail::to_time(X509_get0_notAfter(&cert))) {
        r.not_after = std::chrono::system_clock::from_time_t(*t);
    }
    r.fingerprint = detail::hex(detail::digest(EVP_sha256(), detail::certificate_der(cert)));
    ERR_clear_error();
    return r;
}

std::optional<std::vector<std::uint8_t>> association_data(X509& cert, std::uint8_t selector,
                                                          std::uint8_t matching_type) {
    bytes content;
    if (selector == selector_cert) {
        content = detail::certificate_der(cert);
    } else if (selector == selector_spki) {
        content = detail::certificate_spki_der(cert);
    } else {
        return std::nullopt;
    }
    switch (matching_type) {
    case matching_full:
        return content;
    case matching_sha256:
        return detail::digest(EVP_sha256(), content);
    case matching_sha512:
        return detail::digest(EVP_sha512(), content);
    default:
        return std::nullopt;
    }
}

std::variant<trust, std::string> load_trust(const config::key_settings& settings) {
    trust pol;
    pol.accept_expired_dane_ee = settings.accept_expired_dane_ee;
    pol.preference = settings.preference;
    if (settings.smime_ca_file.empty()) {
        return pol;
    }
    // A CA bundle may be large (Mozilla's is ~200 KiB); 16 MiB bounds a mistaken path.
    auto listing = detail::read_pem_file(settings.smime_ca_file, 16u << 20);
    std::string where = "keys.smime_ca_file " + settings.smime_ca_file.string() + ": ";
    if (!listing.problems.empty()) {
        return where + listing.problems.front().why;
    }
    c_ptr<X509_STORE> store(X509_STORE_new());
    if (!store) {
        return where + "out of memory";
    }
    for (const auto& ca : listing.certificates) {
        if (X509_STORE_add_cert(store.get(), ca.certificate.get()) != 1) {
            ERR_clear_error();
            return where + "a certificate could not be added to the trust store";
        }
        using clock = std::chrono::system_clock;
        if (auto t = detail::to_time(X509_get0_notBefore(ca.certificate.get()))) {
            pol.ca_edges.push_back(clock::from_time_t(*t));
        }
        if (auto t = detail::to_time(X509_get0_notAfter(ca.certificate.get()))) {
            pol.ca_edges.push_back(clock::from_time_t(*t));
            pol.ca_edges.push_back(clock::from_time_t(*t) + std::chrono::seconds(1));
        }
    }
    pol.smime_cas = share(std::move(store));
    return pol;
}

evaluation evaluate(const std::vector<smimea_record>& secure_records,
                    const std::vector<local_certificate>& local_certs, const trust& pol,
                    std::string_view address, std::chrono::system_clock::time_point now) {
    auto t = std::chrono::system_clock::to_time_t(now);
    auto ev = combine(secure_records, examine_all(secure_records, pol, address, t), local_certs,
                      pol, address, t);
    ERR_clear_error();
    // A certificate is valid from notBefore through notAfter (RFC 5280 §4.1.2.5), the time
    // compared in whole seconds; OpenSSL's chain validation already counts notAfter itself as
    // expired, so both seconds are edges.
    auto at = std::chrono::system_clock::from_time_t(t);
    for (const auto& report : ev.reports) {
        if (report.not_before) {
            note_change(ev, *report.not_before, at);
        }
        if (report.not_after) {
            note_change(ev, *report.not_after, at);
            note_change(ev, *report.not_after + std::chrono::seconds(1), at);
        }
    }
    if (std::any_of(secure_records.begin(), secure_records.end(),
                    [](const smimea_record& r) { return r.usage == usage_pkix_ee; })) {
        for (auto edge : pol.ca_edges) {
            note_change(ev, edge, at);
        }
    }
    return ev;
}

evaluation select_keys(dns::outcome outcome, const std::vector<smimea_record>& records,
                       const std::vector<local_certificate>& local_certs, const trust& pol,
                       std::string_view address, std::chrono::system_clock::time_point now) {
    static const std::vector<smimea_record> none;
    switch (outcome) {
    case dns::outcome::secure_records:
        return evaluate(records, local_certs, pol, address, now);
    case dns::outcome::secure_absent: {
        auto ev = evaluate(none, local_certs, pol, address, now);
        ev.decision = "no SMIMEA record (DNSSEC-secure absence): local certificate store";
        return ev;
    }
    case dns::outcome::insecure: {
        // RFC 6698 §4.1: an insecure answer counts as no answer.
        auto ev = evaluate(none, local_certs, pol, address, now);
        ev.decision = "SMIMEA lookup insecure (zone not signed): local certificate store";
        return ev;
    }
    case dns::outcome::bogus:
    case dns::outcome::failure: {
        evaluation ev;
        ev.decision = refusal_decision("SMIMEA", outcome);
        return ev;
    }
    }
    return {};
}

} // namespace mailseal::seal::smime
