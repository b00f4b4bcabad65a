// SPDX-License-Identifier: Apache-2.0
// Fuzzes the S/MIME key evaluation of a DNSSEC-secure SMIMEA answer, on the delivery path:
// the format's evaluate() (src/seal/smime/format.cpp) splits each RDATA into its fields
// (parse_smimea_rdata), parses the certificate or SubjectPublicKeyInfo, and judges it
// (include/mailseal/seal/smime/evaluate.hpp). No local store and no CA file: nothing is read.
//
// Oracles, from the rules in evaluate.hpp: every record gets a report or counts as
// unparsable; without a CA file or a local store only DANE-EE records with the certificate or
// the key itself (3 0 0, 3 1 0) give keys; each key is a certificate key of its own public key,
// used once, and its report says it is selected; RSA keys push out EC ones under
// rsa-only-if-any; an expired certificate gives a key only while expired DANE-EE certificates
// are accepted.
//
// Input (record_input.hpp), option bits: 0 keys.accept_expired_dane_ee off, 1 keys.preference
// all, 2 judge in 2040 instead of 2027 (the seed certificates have expired by then).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include <mailseal/config/config.hpp>
#include <mailseal/seal/smime/evaluate.hpp>
#include <mailseal/seal/smime/smime.hpp>

#include "oracle.hpp"
#include "record_input.hpp"

namespace mailseal::seal::smime {
namespace {

using fuzz::require;

constexpr std::string_view address = "alice@example.org";

bool lowercase_hex(std::string_view s, std::size_t length) {
    return s.size() == length && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

void check(const evaluation& ev, const fuzz::record_input& in, const config::key_settings& keys,
           std::chrono::system_clock::time_point now) {
    require(ev.reports.size() + ev.unparsable == in.lookup.rdata.size(),
            "a record without a report");
    const auto selected = std::count_if(ev.reports.begin(), ev.reports.end(),
                                        [](const candidate_report& r) { return r.selected; });
    require(static_cast<std::size_t>(selected) == ev.keys.size(),
            "selected reports and keys differ in number");
    const bool any_rsa = std::any_of(ev.keys.begin(), ev.keys.end(),
                                     [](const key& k) { return k.algorithm == "rsa"; });
    for (std::size_t i = 0; i < ev.keys.size(); ++i) {
        const key& k = ev.keys[i];
        const certificate_key* material = certificate_of(k);
        require(material != nullptr && material->public_key && !material->spki_der.empty(),
                "a key without its public key");
        require(lowercase_hex(k.fingerprint, 64), "a key fingerprint that is not SHA-256 hex");
        for (std::size_t j = 0; j < i; ++j) {
            require(ev.keys[j].fingerprint != k.fingerprint, "the same key used twice");
        }
        const auto report =
            std::find_if(ev.reports.begin(), ev.reports.end(), [&](const candidate_report& r) {
                return r.selected && r.source == k.source;
            });
        require(report != ev.reports.end() && report->usable && report->in_use,
                "a key whose report is not selected, usable and in use");
        require(k.source.ends_with(" 3 0 0") || k.source.ends_with(" 3 1 0"),
                "a key from a record that cannot give one without a CA file or local store");
        require(keys.preference == config::key_preference::all || !any_rsa || k.algorithm == "rsa",
                "an EC key used beside an RSA key under rsa-only-if-any");
        require(keys.accept_expired_dane_ee || !k.expires || *k.expires >= now,
                "an expired certificate used while expired DANE-EE is refused");
    }
}

} // namespace
} // namespace mailseal::seal::smime

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace mailseal;
    using namespace mailseal::seal::smime;
    const auto in = fuzz::record_input::parse(
        data, size, smimea_rr_type,
        "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db._smimecert.example.org");
    config::config cfg;
    cfg.keys.accept_expired_dane_ee = (in.options & 0x01u) == 0;
    cfg.keys.preference = (in.options & 0x02u) != 0 ? config::key_preference::all
                                                    : config::key_preference::rsa_only_if_any;
    const auto now = std::chrono::system_clock::time_point(
        std::chrono::seconds((in.options & 0x04u) != 0 ? 2208988800 : 1798761600));
    auto made = make_format(cfg);
    require(std::holds_alternative<std::shared_ptr<const seal::format>>(made),
            "no S/MIME format without a CA file");
    const auto& format = std::get<std::shared_ptr<const seal::format>>(made);
    check(format->evaluate(in.lookup, {}, address, now), in, cfg.keys, now);
    return 0;
}
