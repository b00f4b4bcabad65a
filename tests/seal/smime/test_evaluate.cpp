// SPDX-License-Identifier: Apache-2.0
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/seal/smime/evaluate.hpp>

#include "test_certs.hpp"

namespace mailseal::seal::smime {
namespace {

using test::certs;
using test::fixtures;
using bytes = std::vector<std::uint8_t>;

const auto now = std::chrono::system_clock::from_time_t(test::test_now);
constexpr std::string_view alice = "alice@example.org";

// Reason texts, as the reports must give them.
const std::string dane = "DANE-EE certificate";
const std::string bare = "DANE-EE bare public key: the RecipientInfo names it by "
                         "subjectKeyIdentifier, and without a certificate keyUsage cannot be "
                         "checked";
const std::string pkix_ok = "PKIX-EE certificate validated against keys.smime_ca_file";
const std::string local_ok = "local certificate for alice@example.org";
const std::string not_confirmed = "not confirmed by any SMIMEA record: a secure SMIMEA answer "
                                  "takes precedence over the local store";
const std::string rsa_preferred = "not used: RSA keys exist and keys.preference is "
                                  "rsa-only-if-any";
const std::string no_ca = "usage 1 (PKIX-EE) needs keys.smime_ca_file, which is not configured";
const std::string x25519_reason = "X25519: OpenSSL 3.0's CMS cannot encrypt to X25519 keys "
                                  "(operation not supported for this keytype)";
const std::string ed25519_reason = "Ed25519: a signature-only key, nothing can be encrypted to it";

bytes hash(const EVP_MD* md, const bytes& data) {
    bytes out(EVP_MAX_MD_SIZE);
    unsigned int size = 0;
    EVP_Digest(data.data(), data.size(), out.data(), &size, md, nullptr);
    out.resize(size);
    return out;
}

std::string hex_of(const bytes& data) {
    std::string out;
    char hexed[3];
    for (auto b : data) {
        std::snprintf(hexed, sizeof hexed, "%02x", b);
        out += hexed;
    }
    return out;
}

smimea_record rec(std::uint8_t usage, std::uint8_t selector, std::uint8_t matching, bytes data) {
    return {usage, selector, matching, std::move(data)};
}
smimea_record full(std::uint8_t usage, const std::shared_ptr<X509>& cert) {
    return rec(usage, 0, 0, test::der(*cert));
}
smimea_record bare_spki(const std::shared_ptr<X509>& cert) {
    return rec(3, 1, 0, test::spki(*cert));
}
/// A digest record computed independently of the code under test.
smimea_record digest_of(std::uint8_t usage, std::uint8_t selector, std::uint8_t matching,
                        const std::shared_ptr<X509>& cert) {
    bytes content = selector == 0 ? test::der(*cert) : test::spki(*cert);
    return rec(usage, selector, matching,
               hash(matching == 1 ? EVP_sha256() : EVP_sha512(), content));
}
bytes with_trailing(bytes data, std::size_t extra) {
    data.resize(data.size() + extra, 0);
    return data;
}

local_certificate local(const std::shared_ptr<X509>& cert, const char* name) {
    return {cert, std::filesystem::path("/store/example.org/alice") / name};
}

std::shared_ptr<X509_STORE> store_of(const std::shared_ptr<X509>& ca) {
    c_ptr<X509_STORE> store(X509_STORE_new());
    X509_STORE_add_cert(store.get(), ca.get());
    return share(std::move(store));
}

struct want_report {
    std::string source;
    bool usable;
    bool selected;
    std::string why;
};

struct eval_case {
    std::string name;
    std::function<std::vector<smimea_record>(const fixtures&)> records;
    std::function<std::vector<local_certificate>(const fixtures&)> local_certs;
    std::vector<want_report> want_reports{};
    std::vector<std::string> want_keys{};
    bool with_ca = false;
    bool accept_expired = true;
    config::key_preference preference = config::key_preference::rsa_only_if_any;
};

using records_fn = std::function<std::vector<smimea_record>(const fixtures&)>;
using local_fn = std::function<std::vector<local_certificate>(const fixtures&)>;
const records_fn no_records = [](const fixtures&) { return std::vector<smimea_record>{}; };
const local_fn no_local = [](const fixtures&) { return std::vector<local_certificate>{}; };

/// One record, no local certificates, one report.
eval_case one_record(std::string name, std::function<smimea_record(const fixtures&)> record,
                     bool usable, std::string why, bool with_ca = false,
                     bool accept_expired = true) {
    eval_case c{std::move(name),
                [record](const fixtures& f) { return std::vector<smimea_record>{record(f)}; },
                no_local,
                {},
                {},
                with_ca,
                accept_expired};
    c.want_reports = {{"", usable, usable, std::move(why)}};
    return c;
}

/// No records, one local certificate, one report.
eval_case one_local(std::string name, std::function<std::shared_ptr<X509>(const fixtures&)> cert,
                    bool usable, std::string why) {
    eval_case c{std::move(name),
                no_records,
                [cert](const fixtures& f) {
                    return std::vector<local_certificate>{local(cert(f), "a.pem")};
                },
                {{"local /store/example.org/alice/a.pem", usable, usable, std::move(why)}},
                {}};
    if (usable) {
        c.want_keys = {"local /store/example.org/alice/a.pem"};
    }
    return c;
}

class evaluate_test : public testing::TestWithParam<eval_case> {};

TEST_P(evaluate_test, reports_every_decision) {
    const auto& c = GetParam();
    const auto& f = certs();
    trust pol;
    pol.accept_expired_dane_ee = c.accept_expired;
    pol.preference = c.preference;
    if (c.with_ca) {
        pol.smime_cas = store_of(f.ca);
    }
    auto records = c.records(f);
    auto ev = evaluate(records, c.local_certs(f), pol, alice, now);

    ASSERT_EQ(ev.reports.size(), c.want_reports.size()) << "number of reports";
    std::vector<std::string> want_keys = c.want_keys;
    for (std::size_t i = 0; i < ev.reports.size(); ++i) {
        const auto& got = ev.reports[i];
        auto want = c.want_reports[i];
        if (want.source.empty()) {
            // one_record(): the record's own source, and its key when it is selected.
            want.source = "smimea #1 " + std::to_string(records[0].usage) + " " +
                          std::to_string(records[0].selector) + " " +
                          std::to_string(records[0].matching_type);
            if (want.selected) {
                want_keys = {want.source};
            }
        }
        EXPECT_EQ(got.source, want.source) << "report " << i;
        EXPECT_EQ(got.why, want.why) << "report " << i << " (" << got.source << ")";
        EXPECT_EQ(got.usable, want.usable)
            << "report " << i << " (" << got.source << "): got usable " << got.usable << ", want "
            << want.usable;
        EXPECT_EQ(got.selected, want.selected)
            << "report " << i << " (" << got.source << "): got selected " << got.selected
            << ", want " << want.selected;
    }
    std::vector<std::string> got_keys;
    for (const auto& k : ev.keys) {
        got_keys.push_back(k.source);
    }
    EXPECT_EQ(got_keys, want_keys);
}

const std::string p_a = "local /store/example.org/alice/a.pem";
const std::string p_b = "local /store/example.org/alice/b.pem";

INSTANTIATE_TEST_SUITE_P(
    records, evaluate_test,
    testing::Values(
        one_record(
            "dane_ee_rsa", [](const fixtures& f) { return full(3, f.rsa); }, true, dane),
        one_record(
            "dane_ee_rsa_no_key_usage", [](const fixtures& f) { return full(3, f.rsa2); }, true,
            dane),
        one_record(
            "dane_ee_ec_key_agreement_only", [](const fixtures& f) { return full(3, f.ec_agree); },
            true, dane),
        one_record(
            "dane_ee_ec_p384_no_key_usage", [](const fixtures& f) { return full(3, f.ec384); },
            true, dane),
        one_record(
            "dane_ee_ec_signature_only", [](const fixtures& f) { return full(3, f.ec_sign_only); },
            false, "keyUsage lacks keyAgreement"),
        one_record(
            "dane_ee_rsa_signature_only",
            [](const fixtures& f) { return full(3, f.rsa_sign_only); }, false,
            "keyUsage lacks keyEncipherment"),
        one_record(
            "dane_ee_rsa_1024", [](const fixtures& f) { return full(3, f.rsa_weak); }, false,
            "RSA 1024 bits: below 2048"),
        one_record(
            "dane_ee_ed25519", [](const fixtures& f) { return full(3, f.ed25519); }, false,
            ed25519_reason),
        one_record(
            "dane_ee_x25519", [](const fixtures& f) { return full(3, f.x25519); }, false,
            x25519_reason),
        one_record(
            "dane_ee_expired_accepted", [](const fixtures& f) { return full(3, f.expired); }, true,
            dane + "; expired 2025-01-01 (accepted: DANE-EE)"),
        one_record(
            "dane_ee_expired_refused", [](const fixtures& f) { return full(3, f.expired); }, false,
            "expired 2025-01-01 (keys.accept_expired_dane_ee is false)", false, false),
        one_record(
            "dane_ee_not_yet_valid_accepted",
            [](const fixtures& f) { return full(3, f.not_yet_valid); }, true,
            dane + "; not valid before 2027-01-01 (accepted: DANE-EE)"),
        // RFC 7671 §5.1: the DNS record is the binding, names are not checked.
        one_record(
            "dane_ee_other_name", [](const fixtures& f) { return full(3, f.wrong_san); }, true,
            dane),
        one_record(
            "dane_ee_server_eku", [](const fixtures& f) { return full(3, f.eku_server); }, true,
            dane),
        one_record(
            "bare_spki_rsa", [](const fixtures& f) { return bare_spki(f.rsa); }, true, bare),
        one_record(
            "bare_spki_ec", [](const fixtures& f) { return bare_spki(f.ec_agree); }, true, bare),
        one_record(
            "bare_spki_ed25519", [](const fixtures& f) { return bare_spki(f.ed25519); }, false,
            ed25519_reason),
        one_record(
            "bare_spki_x25519", [](const fixtures& f) { return bare_spki(f.x25519); }, false,
            x25519_reason),
        one_record(
            "bare_spki_rsa_1024", [](const fixtures& f) { return bare_spki(f.rsa_weak); }, false,
            "RSA 1024 bits: below 2048"),
        one_record(
            "pkix_ta", [](const fixtures& f) { return full(0, f.ca); }, false,
            "usage 0 (PKIX-TA) is not a recipient key"),
        one_record(
            "dane_ta", [](const fixtures& f) { return full(2, f.ca); }, false,
            "usage 2 (DANE-TA) is not a recipient key"),
        one_record(
            "dane_ta_digest", [](const fixtures& f) { return digest_of(2, 1, 1, f.ca); }, false,
            "usage 2 (DANE-TA) is not a recipient key"),
        one_record(
            "unknown_usage", [](const fixtures& f) { return full(4, f.rsa); }, false,
            "unknown usage 4 (RFC 6698 §4.1: unusable)"),
        one_record(
            "unknown_usage_255", [](const fixtures& f) { return full(255, f.rsa); }, false,
            "unknown usage 255 (RFC 6698 §4.1: unusable)"),
        one_record(
            "unknown_selector", [](const fixtures& f) { return rec(3, 2, 0, test::der(*f.rsa)); },
            false, "unknown selector 2 (RFC 6698 §4.1: unusable)"),
        one_record(
            "unknown_matching_type",
            [](const fixtures& f) { return rec(3, 0, 3, test::der(*f.rsa)); }, false,
            "unknown matching type 3 (RFC 6698 §4.1: unusable)"),
        one_record(
            "certificate_garbage",
            [](const fixtures&) {
                return rec(3, 0, 0, {1, 2, 3, 4});
            },
            false, "certificate DER does not parse"),
        one_record(
            "certificate_empty", [](const fixtures&) { return rec(3, 0, 0, {}); }, false,
            "certificate DER does not parse"),
        one_record(
            "certificate_truncated",
            [](const fixtures& f) {
                auto data = test::der(*f.rsa);
                data.resize(data.size() - 1);
                return rec(3, 0, 0, data);
            },
            false, "certificate DER does not parse"),
        one_record(
            "certificate_trailing_garbage",
            [](const fixtures& f) { return rec(3, 0, 0, with_trailing(test::der(*f.rsa), 2)); },
            false, "certificate DER followed by 2 trailing bytes"),
        one_record(
            "spki_garbage",
            [](const fixtures&) {
                return rec(3, 1, 0, {0x30, 0x03, 1, 2, 3});
            },
            false, "SubjectPublicKeyInfo DER does not parse"),
        one_record(
            "spki_trailing_garbage",
            [](const fixtures& f) { return rec(3, 1, 0, with_trailing(test::spki(*f.rsa), 1)); },
            false, "SubjectPublicKeyInfo DER followed by 1 trailing byte"),
        one_record(
            "sha256_short",
            [](const fixtures& f) {
                auto r = digest_of(3, 0, 1, f.rsa);
                r.data.pop_back();
                return r;
            },
            false, "SHA-256 data is 31 bytes, want 32"),
        one_record(
            "sha512_short",
            [](const fixtures& f) {
                auto r = digest_of(3, 1, 2, f.rsa);
                r.data.resize(32);
                return r;
            },
            false, "SHA-512 data is 32 bytes, want 64"),
        one_record(
            "sha256_long",
            [](const fixtures& f) { return rec(3, 0, 1, hash(EVP_sha512(), test::der(*f.rsa))); },
            false, "SHA-256 data is 64 bytes, want 32"),
        one_record(
            "digest_without_local_store",
            [](const fixtures& f) { return digest_of(3, 0, 1, f.rsa); }, false,
            "SHA-256 of the certificate matches no local certificate"),
        one_record(
            "pkix_ee_without_ca_file", [](const fixtures& f) { return full(1, f.pkix_rsa); }, false,
            no_ca),
        one_record(
            "pkix_ee_rsa", [](const fixtures& f) { return full(1, f.pkix_rsa); }, true, pkix_ok,
            true),
        // X509_PURPOSE_SMIME_ENCRYPT would refuse this keyAgreement-only certificate.
        one_record(
            "pkix_ee_ec_key_agreement_only", [](const fixtures& f) { return full(1, f.pkix_ec); },
            true, pkix_ok, true),
        one_record(
            "pkix_ee_unknown_ca", [](const fixtures& f) { return full(1, f.pkix_other_ca); }, false,
            "does not validate against keys.smime_ca_file: unable to get local issuer certificate",
            true),
        one_record(
            "pkix_ee_self_signed", [](const fixtures& f) { return full(1, f.rsa); }, false,
            "does not validate against keys.smime_ca_file: self-signed certificate", true),
        one_record(
            "pkix_ee_expired", [](const fixtures& f) { return full(1, f.pkix_expired); }, false,
            "does not validate against keys.smime_ca_file: certificate has expired", true),
        one_record(
            "pkix_ee_other_address", [](const fixtures& f) { return full(1, f.pkix_wrong_san); },
            false, "no rfc822Name subjectAltName for alice@example.org (it names bob@example.org)",
            true),
        one_record(
            "pkix_ee_server_eku", [](const fixtures& f) { return full(1, f.pkix_eku_server); },
            false, "extKeyUsage lacks emailProtection", true),
        one_record(
            "pkix_ee_weak_key", [](const fixtures& f) { return full(1, f.rsa_weak); }, false,
            "RSA 1024 bits: below 2048", true),
        one_record(
            "pkix_ee_bare_key_alone",
            [](const fixtures& f) { return rec(1, 1, 0, test::spki(*f.rsa)); }, false,
            "the public key matches no local certificate", true)),
    [](const testing::TestParamInfo<eval_case>& param_info) { return param_info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    local_store, evaluate_test,
    testing::Values(
        one_local(
            "rsa", [](const fixtures& f) { return f.rsa; }, true, local_ok),
        one_local(
            "rsa_no_key_usage", [](const fixtures& f) { return f.rsa2; }, true, local_ok),
        one_local(
            "ec_key_agreement_only", [](const fixtures& f) { return f.ec_agree; }, true, local_ok),
        one_local(
            "ec_signature_only", [](const fixtures& f) { return f.ec_sign_only; }, false,
            "keyUsage lacks keyAgreement"),
        one_local(
            "rsa_signature_only", [](const fixtures& f) { return f.rsa_sign_only; }, false,
            "keyUsage lacks keyEncipherment"),
        one_local(
            "rsa_1024", [](const fixtures& f) { return f.rsa_weak; }, false,
            "RSA 1024 bits: below 2048"),
        one_local(
            "ed25519", [](const fixtures& f) { return f.ed25519; }, false, ed25519_reason),
        one_local(
            "x25519", [](const fixtures& f) { return f.x25519; }, false, x25519_reason),
        // No DNS binding: the dates count.
        one_local(
            "expired", [](const fixtures& f) { return f.expired; }, false, "expired 2025-01-01"),
        one_local(
            "not_yet_valid", [](const fixtures& f) { return f.not_yet_valid; }, false,
            "not valid before 2027-01-01"),
        one_local(
            "other_address", [](const fixtures& f) { return f.wrong_san; }, false,
            "no rfc822Name subjectAltName for alice@example.org (it names bob@example.org)"),
        one_local(
            "no_address", [](const fixtures& f) { return f.no_san; }, false,
            "no rfc822Name subjectAltName for alice@example.org (the certificate has none)"),
        one_local(
            "domain_case_ignored", [](const fixtures& f) { return f.san_domain_case; }, true,
            local_ok),
        // RFC 5280 §7.5: local parts compare exactly.
        one_local(
            "local_part_case_kept", [](const fixtures& f) { return f.san_local_case; }, false,
            "no rfc822Name subjectAltName for alice@example.org (it names Alice@example.org)"),
        one_local(
            "server_eku", [](const fixtures& f) { return f.eku_server; }, false,
            "extKeyUsage lacks emailProtection"),
        // The operator's store is trusted as it stands: no chain to a CA is needed.
        one_local(
            "issued_by_unknown_ca", [](const fixtures& f) { return f.pkix_other_ca; }, true,
            local_ok)),
    [](const testing::TestParamInfo<eval_case>& param_info) { return param_info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    combined, evaluate_test,
    testing::Values(
        eval_case{"sha256_of_certificate_confirms_local",
                  [](const fixtures& f) { return std::vector{digest_of(3, 0, 1, f.rsa)}; },
                  [](const fixtures& f) {
                      return std::vector{local(f.rsa, "a.pem"), local(f.rsa2, "b.pem")};
                  },
                  {{"smimea #1 3 0 1", true, true, "SHA-256 of the certificate matches " + p_a},
                   {p_a, true, true, "confirmed by smimea #1 3 0 1: " + dane},
                   {p_b, false, false, not_confirmed}},
                  {p_a}},
        eval_case{"sha256_of_public_key_confirms_local",
                  [](const fixtures& f) { return std::vector{digest_of(3, 1, 1, f.rsa2)}; },
                  [](const fixtures& f) {
                      return std::vector{local(f.rsa, "a.pem"), local(f.rsa2, "b.pem")};
                  },
                  {{"smimea #1 3 1 1", true, true, "SHA-256 of the public key matches " + p_b},
                   {p_a, false, false, not_confirmed},
                   {p_b, true, true, "confirmed by smimea #1 3 1 1: " + dane}},
                  {p_b}},
        eval_case{"sha512_of_certificate_confirms_local",
                  [](const fixtures& f) { return std::vector{digest_of(3, 0, 2, f.rsa)}; },
                  [](const fixtures& f) { return std::vector{local(f.rsa, "a.pem")}; },
                  {{"smimea #1 3 0 2", true, true, "SHA-512 of the certificate matches " + p_a},
                   {p_a, true, true, "confirmed by smimea #1 3 0 2: " + dane}},
                  {p_a}},
        eval_case{"sha512_of_public_key_confirms_every_certificate_of_the_key",
                  [](const fixtures& f) { return std::vector{digest_of(3, 1, 2, f.rsa)}; },
                  [](const fixtures& f) {
                      return std::vector{local(f.rsa, "a.pem"), local(f.rsa_renewed, "b.pem")};
                  },
                  {{"smimea #1 3 1 2", true, true,
                    "SHA-512 of the public key matches " + p_a + ", " + p_b},
                   {p_a, true, true, "confirmed by smimea #1 3 1 2: " + dane},
                   {p_b, true, false,
                    "confirmed by smimea #1 3 1 2: " + dane + "; same public key as " + p_a}},
                  {p_a}},
        // The DNS binding makes an expired local certificate acceptable, as for 3 0 0.
        eval_case{"digest_confirms_expired_local_as_dane_ee",
                  [](const fixtures& f) { return std::vector{digest_of(3, 0, 1, f.expired)}; },
                  [](const fixtures& f) { return std::vector{local(f.expired, "a.pem")}; },
                  {{"smimea #1 3 0 1", true, true, "SHA-256 of the certificate matches " + p_a},
                   {p_a, true, true,
                    "confirmed by smimea #1 3 0 1: " + dane +
                        "; expired 2025-01-01 (accepted: DANE-EE)"}},
                  {p_a}},
        eval_case{"digest_confirms_unusable_local",
                  [](const fixtures& f) { return std::vector{digest_of(3, 0, 1, f.rsa_weak)}; },
                  [](const fixtures& f) { return std::vector{local(f.rsa_weak, "a.pem")}; },
                  {{"smimea #1 3 0 1", false, false,
                    "SHA-256 of the certificate matches " + p_a + ", which is not usable"},
                   {p_a, false, false, "confirmed by smimea #1 3 0 1: RSA 1024 bits: below 2048"}},
                  {}},
        eval_case{"digest_matches_nothing",
                  [](const fixtures& f) { return std::vector{digest_of(3, 0, 1, f.rsa2)}; },
                  [](const fixtures& f) { return std::vector{local(f.rsa, "a.pem")}; },
                  {{"smimea #1 3 0 1", false, false,
                    "SHA-256 of the certificate matches no local certificate"},
                   {p_a, false, false, not_confirmed}},
                  {}},
        eval_case{
            "pkix_ee_digest_confirms_local_that_validates",
            [](const fixtures& f) {
                return std::vector{digest_of(1, 0, 1, f.pkix_rsa),
                                   digest_of(1, 0, 1, f.pkix_other_ca)};
            },
            [](const fixtures& f) {
                return std::vector{local(f.pkix_rsa, "a.pem"), local(f.pkix_other_ca, "b.pem")};
            },
            {{"smimea #1 1 0 1", true, true, "SHA-256 of the certificate matches " + p_a},
             {"smimea #2 1 0 1", false, false,
              "SHA-256 of the certificate matches " + p_b + ", which is not usable"},
             {p_a, true, true, "confirmed by smimea #1 1 0 1: " + pkix_ok},
             {p_b, false, false,
              "confirmed by smimea #2 1 0 1: does not validate against "
              "keys.smime_ca_file: unable to get local issuer certificate"}},
            {p_a},
            true},
        eval_case{
            "pkix_ee_bare_key_confirms_local",
            [](const fixtures& f) { return std::vector{rec(1, 1, 0, test::spki(*f.pkix_ec))}; },
            [](const fixtures& f) { return std::vector{local(f.pkix_ec, "a.pem")}; },
            {{"smimea #1 1 1 0", true, true, "the public key matches " + p_a},
             {p_a, true, true, "confirmed by smimea #1 1 1 0: " + pkix_ok}},
            {p_a},
            true},
        // A local certificate for a DANE-EE bare key supplies the certificate to name.
        eval_case{"bare_key_prefers_local_certificate_of_the_same_key",
                  [](const fixtures& f) { return std::vector{bare_spki(f.ec_agree)}; },
                  [](const fixtures& f) { return std::vector{local(f.ec_agree, "a.pem")}; },
                  {{"smimea #1 3 1 0", true, false, bare + "; same public key as " + p_a},
                   {p_a, true, true, "confirmed by smimea #1 3 1 0: " + dane}},
                  {p_a}},
        eval_case{"full_record_and_local_certificate_unconfirmed",
                  [](const fixtures& f) { return std::vector{full(3, f.rsa)}; },
                  [](const fixtures& f) { return std::vector{local(f.rsa2, "a.pem")}; },
                  {{"smimea #1 3 0 0", true, true, dane}, {p_a, false, false, not_confirmed}},
                  {"smimea #1 3 0 0"}},
        eval_case{"duplicate_records",
                  [](const fixtures& f) {
                      return std::vector{full(3, f.rsa), full(3, f.rsa)};
                  },
                  no_local,
                  {{"smimea #1 3 0 0", true, true, dane},
                   {"smimea #2 3 0 0", true, false, dane + "; same public key as smimea #1 3 0 0"}},
                  {"smimea #1 3 0 0"}},
        eval_case{"same_key_in_two_certificates",
                  [](const fixtures& f) {
                      return std::vector{full(3, f.rsa), full(3, f.rsa_renewed)};
                  },
                  no_local,
                  {{"smimea #1 3 0 0", true, true, dane},
                   {"smimea #2 3 0 0", true, false, dane + "; same public key as smimea #1 3 0 0"}},
                  {"smimea #1 3 0 0"}},
        eval_case{"same_key_as_certificate_and_bare_key",
                  [](const fixtures& f) {
                      return std::vector{bare_spki(f.rsa), full(3, f.rsa)};
                  },
                  no_local,
                  {{"smimea #1 3 1 0", true, false, bare + "; same public key as smimea #2 3 0 0"},
                   {"smimea #2 3 0 0", true, true, dane}},
                  {"smimea #2 3 0 0"}},
        eval_case{"two_keys_both_used",
                  [](const fixtures& f) {
                      return std::vector{full(3, f.rsa), full(3, f.rsa2)};
                  },
                  no_local,
                  {{"smimea #1 3 0 0", true, true, dane}, {"smimea #2 3 0 0", true, true, dane}},
                  {"smimea #1 3 0 0", "smimea #2 3 0 0"}},
        eval_case{"rsa_preferred_over_ec",
                  [](const fixtures& f) {
                      return std::vector{full(3, f.ec_agree), full(3, f.rsa), full(3, f.ec384)};
                  },
                  no_local,
                  {{"smimea #1 3 0 0", true, false, dane + "; " + rsa_preferred},
                   {"smimea #2 3 0 0", true, true, dane},
                   {"smimea #3 3 0 0", true, false, dane + "; " + rsa_preferred}},
                  {"smimea #2 3 0 0"}},
        eval_case{"all_keys_when_preference_is_all",
                  [](const fixtures& f) {
                      return std::vector{full(3, f.ec_agree), full(3, f.rsa), full(3, f.ec384)};
                  },
                  no_local,
                  {{"smimea #1 3 0 0", true, true, dane},
                   {"smimea #2 3 0 0", true, true, dane},
                   {"smimea #3 3 0 0", true, true, dane}},
                  {"smimea #1 3 0 0", "smimea #2 3 0 0", "smimea #3 3 0 0"},
                  false,
                  true,
                  config::key_preference::all},
        eval_case{"ec_only_keys_used_when_no_rsa",
                  [](const fixtures& f) {
                      return std::vector{full(3, f.ec_agree), full(3, f.rsa_weak)};
                  },
                  no_local,
                  {{"smimea #1 3 0 0", true, true, dane},
                   {"smimea #2 3 0 0", false, false, "RSA 1024 bits: below 2048"}},
                  {"smimea #1 3 0 0"}},
        eval_case{"local_store_rsa_preference_and_dedup",
                  no_records,
                  [](const fixtures& f) {
                      return std::vector{local(f.ec_agree, "a.pem"), local(f.rsa, "b.pem"),
                                         local(f.rsa_renewed, "c.pem")};
                  },
                  {{p_a, true, false, local_ok + "; " + rsa_preferred},
                   {p_b, true, true, local_ok},
                   {"local /store/example.org/alice/c.pem", true, false,
                    local_ok + "; same public key as " + p_b}},
                  {p_b}}),
    [](const testing::TestParamInfo<eval_case>& param_info) { return param_info.param.name; });

TEST(evaluate, key_fields) {
    const auto& f = certs();
    auto ev = evaluate({full(3, f.rsa), bare_spki(f.ec_agree), full(3, f.ec384)}, {},
                       trust{.preference = config::key_preference::all}, alice, now);
    ASSERT_EQ(ev.keys.size(), 3u);

    const auto* k0 = certificate_of(ev.keys[0]);
    ASSERT_NE(k0, nullptr);
    EXPECT_EQ(k0->type, key_type::rsa);
    EXPECT_EQ(ev.keys[0].algorithm, "rsa");
    EXPECT_EQ(ev.keys[0].bits, 2048);
    ASSERT_NE(k0->certificate, nullptr);
    EXPECT_EQ(X509_cmp(k0->certificate.get(), f.rsa.get()), 0);
    EXPECT_EQ(k0->spki_der, test::spki(*f.rsa));
    EXPECT_EQ(ev.keys[0].fingerprint, hex_of(hash(EVP_sha256(), test::spki(*f.rsa))));
    EXPECT_EQ(EVP_PKEY_eq(k0->public_key.get(), f.rsa_key.get()), 1);
    ASSERT_TRUE(ev.keys[0].expires);
    EXPECT_EQ(iso_time(*ev.keys[0].expires), "2030-01-01T00:00:00Z");

    const auto* k1 = certificate_of(ev.keys[1]);
    ASSERT_NE(k1, nullptr);
    EXPECT_EQ(k1->type, key_type::ec_p256);
    EXPECT_EQ(ev.keys[1].bits, 256);
    EXPECT_EQ(k1->certificate, nullptr) << "a bare SPKI has no certificate";
    EXPECT_FALSE(ev.keys[1].expires) << "a bare SPKI has no expiry";
    EXPECT_EQ(k1->spki_der, test::spki(*f.ec_agree));
    EXPECT_EQ(EVP_PKEY_eq(k1->public_key.get(), f.ec_key.get()), 1);

    EXPECT_EQ(certificate_of(ev.keys[2])->type, key_type::ec_p384);
    EXPECT_EQ(ev.keys[2].algorithm, "ec-p384");
    EXPECT_EQ(ev.keys[2].bits, 384);
}

TEST(evaluate, report_details) {
    const auto& f = certs();
    auto ev = evaluate({full(3, f.rsa), bare_spki(f.ec_agree), rec(3, 0, 0, {1})}, {}, trust{},
                       alice, now);
    ASSERT_EQ(ev.reports.size(), 3u);
    const auto& r = ev.reports[0];
    EXPECT_EQ(r.subject, "CN=Alice");
    EXPECT_EQ(r.names, std::vector<std::string>{"alice@example.org"});
    EXPECT_EQ(r.key_description, "RSA 2048");
    ASSERT_TRUE(r.not_before && r.not_after);
    EXPECT_EQ(iso_time(*r.not_before), "2025-01-01T00:00:00Z");
    EXPECT_EQ(iso_time(*r.not_after), "2030-01-01T00:00:00Z");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    X509_digest(f.rsa.get(), EVP_sha256(), md, &size);
    EXPECT_EQ(r.fingerprint.size(), 64u);
    EXPECT_EQ(bytes(md, md + size), hash(EVP_sha256(), test::der(*f.rsa)));
    char hexed[3];
    std::string want;
    for (unsigned int i = 0; i < size; ++i) {
        std::snprintf(hexed, sizeof hexed, "%02x", md[i]);
        want += hexed;
    }
    EXPECT_EQ(r.fingerprint, want);

    EXPECT_EQ(ev.reports[1].key_description, "EC P-256");
    EXPECT_EQ(ev.reports[1].subject, "");
    EXPECT_EQ(ev.reports[2].key_description, "");
}

struct describe_case {
    std::string name;
    std::function<std::shared_ptr<X509>(const fixtures&)> cert;
    std::string want;
};

class key_description_test : public testing::TestWithParam<describe_case> {};

TEST_P(key_description_test, names_key) {
    const auto& c = GetParam();
    auto got = describe(*c.cert(certs()), "x").key_description;
    EXPECT_EQ(got, c.want) << "got " << got << ", want " << c.want;
}

INSTANTIATE_TEST_SUITE_P(
    table, key_description_test,
    testing::Values(
        describe_case{"rsa", [](const fixtures& f) { return f.rsa; }, "RSA 2048"},
        describe_case{"rsa_1024", [](const fixtures& f) { return f.rsa_weak; }, "RSA 1024"},
        describe_case{"p256", [](const fixtures& f) { return f.ec_agree; }, "EC P-256"},
        describe_case{"p384", [](const fixtures& f) { return f.ec384; }, "EC P-384"},
        describe_case{"ed25519", [](const fixtures& f) { return f.ed25519; }, "Ed25519"},
        describe_case{"x25519", [](const fixtures& f) { return f.x25519; }, "X25519"}),
    [](const testing::TestParamInfo<describe_case>& param_info) { return param_info.param.name; });

TEST(association_data, matches_openssl_digests) {
    const auto& f = certs();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    X509_digest(f.rsa.get(), EVP_sha256(), md, &size);
    EXPECT_EQ(association_data(*f.rsa, 0, 1), bytes(md, md + size));
    X509_digest(f.rsa.get(), EVP_sha512(), md, &size);
    EXPECT_EQ(association_data(*f.rsa, 0, 2), bytes(md, md + size));
    EXPECT_EQ(association_data(*f.rsa, 0, 0), test::der(*f.rsa));
    EXPECT_EQ(association_data(*f.rsa, 1, 0), test::spki(*f.rsa));
    EXPECT_EQ(association_data(*f.rsa, 1, 1), hash(EVP_sha256(), test::spki(*f.rsa)));
    EXPECT_EQ(association_data(*f.rsa, 1, 2), hash(EVP_sha512(), test::spki(*f.rsa)));
    EXPECT_EQ(association_data(*f.rsa, 2, 0), std::nullopt);
    EXPECT_EQ(association_data(*f.rsa, 0, 3), std::nullopt);
}

struct precedence_case {
    std::string name;
    dns::outcome outcome;
    records_fn records;
    std::vector<std::string> want_sources; ///< of the reports
    std::vector<std::string> want_keys;
    std::string want_decision;
};

class precedence_test : public testing::TestWithParam<precedence_case> {};

TEST_P(precedence_test, chooses_source) {
    const auto& c = GetParam();
    const auto& f = certs();
    // The local store always holds a usable certificate that no record names.
    std::vector<local_certificate> store{local(f.rsa2, "a.pem")};
    auto ev = select_keys(c.outcome, c.records(f), store, trust{}, alice, now);
    std::vector<std::string> got_sources, got_keys;
    for (const auto& r : ev.reports) {
        got_sources.push_back(r.source);
    }
    for (const auto& k : ev.keys) {
        got_keys.push_back(k.source);
    }
    EXPECT_EQ(got_sources, c.want_sources);
    EXPECT_EQ(got_keys, c.want_keys);
    EXPECT_EQ(ev.decision, c.want_decision);
}

const std::string from_dns = "secure SMIMEA answer: keys from the records and the local "
                             "certificates they confirm";

INSTANTIATE_TEST_SUITE_P(
    table, precedence_test,
    testing::Values(
        precedence_case{"secure_records_win",
                        dns::outcome::secure_records,
                        [](const fixtures& f) { return std::vector{full(3, f.rsa)}; },
                        {"smimea #1 3 0 0", p_a},
                        {"smimea #1 3 0 0"},
                        from_dns},
        precedence_case{"secure_hash_records_select_matching_local",
                        dns::outcome::secure_records,
                        [](const fixtures& f) { return std::vector{digest_of(3, 1, 1, f.rsa2)}; },
                        {"smimea #1 3 1 1", p_a},
                        {p_a},
                        from_dns},
        precedence_case{
            "secure_records_without_key_do_not_open_local_store",
            dns::outcome::secure_records,
            [](const fixtures& f) {
                return std::vector{full(3, f.rsa_weak), full(0, f.ca), digest_of(3, 0, 1, f.rsa)};
            },
            {"smimea #1 3 0 0", "smimea #2 0 0 0", "smimea #3 3 0 1", p_a},
            {},
            from_dns},
        precedence_case{
            "secure_records_malformed_ones_ignored",
            dns::outcome::secure_records,
            [](const fixtures& f) {
                return std::vector{rec(3, 0, 0, {1, 2}), rec(9, 0, 0, {}), rec(3, 1, 1, {1}),
                                   full(3, f.rsa)};
            },
            {"smimea #1 3 0 0", "smimea #2 9 0 0", "smimea #3 3 1 1", "smimea #4 3 0 0", p_a},
            {"smimea #4 3 0 0"},
            from_dns},
        precedence_case{"secure_records_only_malformed",
                        dns::outcome::secure_records,
                        [](const fixtures&) {
                            return std::vector{rec(3, 0, 0, {1, 2}), rec(3, 1, 1, {1})};
                        },
                        {"smimea #1 3 0 0", "smimea #2 3 1 1", p_a},
                        {p_a},
                        "secure SMIMEA answer without a usable record (RFC 6698 §4.1): local "
                        "certificate store"},
        precedence_case{"secure_absent_uses_local_store",
                        dns::outcome::secure_absent,
                        no_records,
                        {p_a},
                        {p_a},
                        "no SMIMEA record (DNSSEC-secure absence): local certificate store"},
        precedence_case{"insecure_uses_local_store_and_ignores_records",
                        dns::outcome::insecure,
                        [](const fixtures& f) { return std::vector{full(3, f.rsa)}; },
                        {p_a},
                        {p_a},
                        "SMIMEA lookup insecure (zone not signed): local certificate store"},
        precedence_case{"bogus_never_falls_back",
                        dns::outcome::bogus,
                        [](const fixtures& f) { return std::vector{full(3, f.rsa)}; },
                        {},
                        {},
                        "SMIMEA answer bogus (DNSSEC validation failed): no keys, and no "
                        "fallback to the local store"},
        precedence_case{"failure_never_falls_back",
                        dns::outcome::failure,
                        no_records,
                        {},
                        {},
                        "SMIMEA lookup failed: no keys, and no fallback to the local store"}),
    [](const testing::TestParamInfo<precedence_case>& param_info) {
        return param_info.param.name;
    });

TEST(precedence, secure_records_with_empty_list_is_absence) {
    const auto& f = certs();
    auto ev = select_keys(dns::outcome::secure_records, {}, {local(f.rsa2, "a.pem")}, trust{},
                          alice, now);
    ASSERT_EQ(ev.keys.size(), 1u);
    EXPECT_EQ(ev.decision, "no secure SMIMEA records: local certificate store");
}

TEST(evaluate, holds_until_a_certificate_it_saw_changes) {
    const auto& f = certs();
    auto one = evaluate({full(3, f.rsa)}, {}, trust{}, alice, now);
    ASSERT_TRUE(one.changes_at);
    EXPECT_EQ(iso_time(*one.changes_at), "2030-01-01T00:00:00Z")
        << "valid through notAfter, but chain validation already calls notAfter expired";

    // A DANE-EE record does not check the dates, but the verdict is still kept no longer.
    auto two = evaluate({full(3, f.rsa), full(3, f.not_yet_valid)}, {}, trust{}, alice, now);
    ASSERT_TRUE(two.changes_at);
    EXPECT_EQ(iso_time(*two.changes_at), "2027-01-01T00:00:00Z");

    auto local =
        evaluate({}, {{f.not_yet_valid, "/store/example.org/alice/a.pem"}}, trust{}, alice, now);
    EXPECT_TRUE(local.keys.empty());
    ASSERT_TRUE(local.changes_at) << "the local certificate becomes valid then";
    EXPECT_EQ(iso_time(*local.changes_at), "2027-01-01T00:00:00Z");

    EXPECT_FALSE(evaluate({bare_spki(f.ec_agree)}, {}, trust{}, alice, now).changes_at)
        << "a bare public key has no dates";
    EXPECT_FALSE(evaluate({}, {{f.expired, "/store/example.org/alice/a.pem"}}, trust{}, alice, now)
                     .changes_at)
        << "all its dates are past";
}

TEST(load_trust, loads_ca_file) {
    const auto& f = certs();
    test::temp_dir dir;
    auto file = dir.path() / "cas.pem";
    std::ofstream(file) << "Test CAs\n" << test::pem(*f.other_ca) << test::pem(*f.ca);

    config::key_settings settings;
    settings.smime_ca_file = file;
    settings.accept_expired_dane_ee = false;
    settings.preference = config::key_preference::all;
    auto got = load_trust(settings);
    ASSERT_TRUE(std::holds_alternative<trust>(got)) << std::get<std::string>(got);
    const auto& pol = std::get<trust>(got);
    EXPECT_FALSE(pol.accept_expired_dane_ee);
    EXPECT_EQ(pol.preference, config::key_preference::all);
    ASSERT_NE(pol.smime_cas, nullptr);

    auto ev = evaluate({full(1, f.pkix_rsa), full(1, f.pkix_other_ca)}, {}, pol, alice, now);
    ASSERT_EQ(ev.reports.size(), 2u);
    EXPECT_TRUE(ev.reports[0].usable) << ev.reports[0].why;
    EXPECT_TRUE(ev.reports[1].usable) << ev.reports[1].why;

    // A PKIX verdict also depends on the CAs' dates.
    EXPECT_EQ(pol.ca_edges.size(), 6u);
    auto short_lived = pol;
    short_lived.ca_edges.push_back(std::chrono::system_clock::from_time_t(test::utc(2026, 7, 1)));
    auto pkix = evaluate({full(1, f.pkix_rsa)}, {}, short_lived, alice, now);
    ASSERT_TRUE(pkix.changes_at);
    EXPECT_EQ(iso_time(*pkix.changes_at), "2026-07-01T00:00:00Z");
    auto dane_ee = evaluate({full(3, f.rsa)}, {}, short_lived, alice, now);
    ASSERT_TRUE(dane_ee.changes_at);
    EXPECT_EQ(iso_time(*dane_ee.changes_at), "2030-01-01T00:00:00Z") << "DANE-EE needs no CA";
}

TEST(load_trust, without_ca_file) {
    auto got = load_trust(config::key_settings{});
    ASSERT_TRUE(std::holds_alternative<trust>(got));
    EXPECT_EQ(std::get<trust>(got).smime_cas, nullptr);
    EXPECT_TRUE(std::get<trust>(got).accept_expired_dane_ee);
    EXPECT_EQ(std::get<trust>(got).preference, config::key_preference::rsa_only_if_any);
}

struct bad_ca_case {
    std::string name;
    std::string content; ///< empty: no file at all
    std::string want;
};

class make_policy_error_test : public testing::TestWithParam<bad_ca_case> {};

TEST_P(make_policy_error_test, names_file_and_problem) {
    const auto& c = GetParam();
    test::temp_dir dir;
    auto file = dir.path() / "cas.pem";
    if (!c.content.empty()) {
        std::ofstream(file) << c.content;
    }
    config::key_settings settings;
    settings.smime_ca_file = file;
    auto got = load_trust(settings);
    ASSERT_TRUE(std::holds_alternative<std::string>(got)) << "got a policy, want an error";
    EXPECT_EQ(std::get<std::string>(got), "keys.smime_ca_file " + file.string() + ": " + c.want);
}

INSTANTIATE_TEST_SUITE_P(
    table, make_policy_error_test,
    testing::Values(bad_ca_case{"missing", "", "cannot open: No such file or directory"},
                    bad_ca_case{"no_certificate", "not a PEM file\n", "no PEM certificate"},
                    bad_ca_case{"broken_base64",
                                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                                "PEM block 1 does not parse"},
                    bad_ca_case{"bad_der",
                                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                                "PEM block 1: certificate DER does not parse"}),
    [](const testing::TestParamInfo<bad_ca_case>& param_info) { return param_info.param.name; });

} // namespace
} // namespace mailseal::seal::smime
