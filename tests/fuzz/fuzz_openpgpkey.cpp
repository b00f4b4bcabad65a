// SPDX-License-Identifier: Apache-2.0
// Fuzzes the OpenPGP key evaluation of a DNSSEC-secure OPENPGPKEY answer, on the delivery path:
// the format's evaluate() (src/seal/openpgp/format.cpp) hands every RDATA to librnp and judges
// each transferable public key (include/mailseal/seal/openpgp/evaluate.hpp). No local store:
// nothing is read.
//
// Oracles, from the rules in evaluate.hpp: every record gets exactly one report; every key is
// an encryption key of its own fingerprint with the transferable key it belongs to, used once,
// from a usable report whose user IDs name the address (RFC 7929 §5); and it is RSA of 2048
// bits or more or ECDH on an accepted curve, not expired at the time of judging.
//
// Input (record_input.hpp), option bit 0: judge in 2040 instead of 2027 (the seed keys that
// expire have expired by then).

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include <mailseal/config/config.hpp>
#include <mailseal/seal/openpgp/evaluate.hpp>
#include <mailseal/seal/openpgp/openpgp.hpp>
#include <mailseal/util/ascii.hpp>

#include "oracle.hpp"
#include "record_input.hpp"

namespace mailseal::seal::openpgp {
namespace {

using fuzz::require;

constexpr std::string_view address = "alice@example.org";

/// The algorithms a key may have, as key::algorithm names them (evaluate.hpp).
bool accepted_algorithm(const key& k) {
    static constexpr std::array<std::string_view, 7> ecdh{
        "ecdh-curve25519",      "ecdh-nist-p-256",      "ecdh-nist-p-384",     "ecdh-nist-p-521",
        "ecdh-brainpoolp256r1", "ecdh-brainpoolp384r1", "ecdh-brainpoolp512r1"};
    if (k.algorithm == "rsa") {
        return k.bits >= 2048;
    }
    return std::find(ecdh.begin(), ecdh.end(), k.algorithm) != ecdh.end();
}

void check(const evaluation& ev, const fuzz::record_input& in,
           std::chrono::system_clock::time_point now) {
    require(ev.reports.size() == in.lookup.rdata.size() && ev.unparsable == 0,
            "not one report per record");
    for (std::size_t i = 0; i < ev.keys.size(); ++i) {
        const key& k = ev.keys[i];
        const encryption_key* material = encryption_key_of(k);
        require(material != nullptr && material->transferable_key &&
                    !material->transferable_key->empty(),
                "a key without its transferable public key");
        require(util::ascii_lower(material->fingerprint) == k.fingerprint,
                "a key's fingerprint is not the one it encrypts to");
        for (std::size_t j = 0; j < i; ++j) {
            require(ev.keys[j].fingerprint != k.fingerprint, "the same key used twice");
        }
        const auto report =
            std::find_if(ev.reports.begin(), ev.reports.end(), [&](const candidate_report& r) {
                return r.usable && r.in_use && k.source.starts_with(r.source + " ");
            });
        require(report != ev.reports.end(), "a key whose report is not usable and in use");
        require(std::any_of(report->names.begin(), report->names.end(),
                            [](const std::string& uid) { return names_address(uid, address); }),
                "a key without a user ID naming the address");
        require(accepted_algorithm(k), "a key of an algorithm that is not accepted");
        require(!k.expires || *k.expires >= now, "an expired key used");
    }
}

} // namespace
} // namespace mailseal::seal::openpgp

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace mailseal;
    using namespace mailseal::seal::openpgp;
    const auto in = fuzz::record_input::parse(
        data, size, openpgpkey_rr_type,
        "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db._openpgpkey.example.org");
    const auto now = std::chrono::system_clock::time_point(
        std::chrono::seconds((in.options & 0x01u) != 0 ? 2208988800 : 1798761600));
    auto made = make_format(config::config{});
    const auto& format = std::get<std::shared_ptr<const seal::format>>(made);
    check(format->evaluate(in.lookup, {}, address, now), in, now);
    return 0;
}
