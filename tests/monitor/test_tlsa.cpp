// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include <mailseal/monitor/tlsa.hpp>
#include <mailseal/seal/smime/evaluate.hpp>

#include "test_certs.hpp"

namespace mailseal::monitor {
namespace {

namespace t = seal::smime::test;
using std::chrono::hours;
using std::chrono::seconds;
using time_point = std::chrono::system_clock::time_point;

const time_point now = std::chrono::system_clock::from_time_t(t::test_now);

/// A root CA, an intermediate and two server certificates for mx.example.org under it: the
/// one in use (valid until 2026-06-11, ten days after the tests' "now") and the next one.
struct pki {
    std::shared_ptr<EVP_PKEY> root_key = t::generate("EC", "P-256");
    std::shared_ptr<X509> root =
        t::make_cert({.key = root_key, .common_name = "Root", .emails = {}, .ca = true});
    std::shared_ptr<EVP_PKEY> inter_key = t::generate("EC", "P-256");
    std::shared_ptr<X509> inter = t::make_cert({.key = inter_key,
                                                .common_name = "R1",
                                                .emails = {},
                                                .ca = true,
                                                .issuer = root,
                                                .signer = root_key});
    std::shared_ptr<X509> current = server("mx.example.org", t::utc(2026, 6, 11));
    std::shared_ptr<X509> next = server("mx.example.org", t::utc(2027, 6, 1));

    std::shared_ptr<X509> server(const std::string& name, std::time_t not_after) const {
        return t::make_cert({.key = t::generate("EC", "P-256"),
                             .common_name = name,
                             .emails = {},
                             .dns_names = {name},
                             .not_after = not_after,
                             .issuer = inter,
                             .signer = inter_key,
                             .serial = 7});
    }
    served_chain chain(std::shared_ptr<X509> leaf) const {
        return {"test", {std::move(leaf), inter, root}};
    }
};

const pki& certs() {
    static const pki p;
    return p;
}

std::vector<std::uint8_t> rdata(std::uint8_t usage, std::uint8_t selector, std::uint8_t matching,
                                X509& cert) {
    std::vector<std::uint8_t> out{usage, selector, matching};
    auto data = seal::smime::association_data(cert, selector, matching);
    out.insert(out.end(), data->begin(), data->end());
    return out;
}

std::string presentation(const std::vector<std::uint8_t>& rd) {
    return seal::smime::to_presentation(*seal::smime::parse_smimea_rdata(rd));
}

tlsa_inputs inputs(std::vector<std::vector<std::uint8_t>> records,
                   dns::outcome outcome = dns::outcome::secure_records) {
    tlsa_inputs in;
    in.host = "mx.example.org";
    in.lookup.result = outcome;
    in.lookup.owner = "_25._tcp.mx.example.org";
    in.lookup.rr_type = tlsa_rr_type;
    in.lookup.ttl = 3600;
    in.lookup.rdata = std::move(records);
    in.current = {certs().chain(certs().current)};
    in.at = now;
    in.warn_days = 5;
    return in;
}

bool mentions(const verdict& v, const std::string& text) {
    for (const auto& f : v.findings) {
        if (f.text.find(text) != std::string::npos) {
            return true;
        }
    }
    return false;
}

TEST(JudgeTlsa, DaneEeRecordOfTheKeyInUse) {
    auto j = judge_tlsa(inputs({rdata(3, 1, 1, *certs().current)}));
    EXPECT_EQ(j.result.level, ok);
    EXPECT_EQ(j.result.name, "_25._tcp.mx.example.org");
    EXPECT_TRUE(j.result.publish.empty());
    ASSERT_TRUE(j.result.days_to_expiry);
    EXPECT_NEAR(*j.result.days_to_expiry, 10.0, 0.01);
    // Full certificate and SHA-512 forms match too.
    EXPECT_EQ(judge_tlsa(inputs({rdata(3, 0, 2, *certs().current)})).result.level, ok);
}

TEST(JudgeTlsa, NoMatchNamesTheRecordToPublish) {
    auto j = judge_tlsa(inputs({rdata(3, 1, 1, *certs().next)}));
    EXPECT_EQ(j.result.level, critical);
    EXPECT_TRUE(mentions(j.result, "no TLSA record matches the certificate in use"));
    ASSERT_EQ(j.result.publish.size(), 1u);
    EXPECT_EQ(j.result.publish[0], "_25._tcp.mx.example.org. 3600 IN TLSA " +
                                       presentation(rdata(3, 1, 1, *certs().current)));
}

TEST(JudgeTlsa, DaneTaMatchesThroughAVerifiedChain) {
    auto by_root = judge_tlsa(inputs({rdata(2, 1, 1, *certs().root)}));
    EXPECT_EQ(by_root.result.level, ok);
    auto by_intermediate = judge_tlsa(inputs({rdata(2, 1, 1, *certs().inter)}));
    EXPECT_EQ(by_intermediate.result.level, warning);
    EXPECT_TRUE(mentions(by_intermediate.result, "intermediate CA"));
    EXPECT_EQ(by_intermediate.result.publish.size(), 1u);
    // The name is checked for DANE-TA (RFC 7672 §3.2.3): another host's certificate fails.
    auto other = inputs({rdata(2, 1, 1, *certs().root)});
    other.host = "other.example.org";
    auto misnamed = judge_tlsa(other);
    EXPECT_EQ(misnamed.result.level, critical);
    EXPECT_TRUE(mentions(misnamed.result, "does not verify"));
    // So is the time: after the server certificate's end, the chain does not verify. The
    // record is right and stays (no removal); renewing is the fix.
    auto late = inputs({rdata(2, 1, 1, *certs().root)});
    late.at = now + hours(24 * 30);
    auto expired = judge_tlsa(late);
    EXPECT_EQ(expired.result.level, critical);
    EXPECT_TRUE(mentions(expired.result, "renew the certificate"));
    EXPECT_TRUE(expired.result.remove.empty());
}

TEST(JudgeTlsa, PkixUsagesAreUnusableForSmtp) {
    auto j = judge_tlsa(inputs({rdata(1, 1, 1, *certs().current)}));
    EXPECT_EQ(j.result.level, critical);
    EXPECT_TRUE(mentions(j.result, "RFC 7672"));
    EXPECT_EQ(j.result.remove.size(), 1u);
}

TEST(JudgeTlsa, ExpiryWithinWarnDaysAndPast) {
    auto in = inputs({rdata(3, 1, 1, *certs().current)});
    in.warn_days = 21;
    EXPECT_EQ(judge_tlsa(in).result.level, warning);
    in.at = now + hours(24 * 20);
    auto expired = judge_tlsa(in);
    EXPECT_EQ(expired.result.level, warning);
    EXPECT_TRUE(mentions(expired.result, "expired"));
    EXPECT_LT(*expired.result.days_to_expiry, 0);
}

TEST(JudgeTlsa, DnsOutcomes) {
    EXPECT_EQ(judge_tlsa(inputs({}, dns::outcome::bogus)).result.level, critical);
    EXPECT_EQ(judge_tlsa(inputs({}, dns::outcome::insecure)).result.level, critical);
    EXPECT_EQ(judge_tlsa(inputs({}, dns::outcome::failure)).result.level, unknown);
    auto absent = inputs({}, dns::outcome::secure_absent);
    EXPECT_EQ(judge_tlsa(absent).result.level, warning);
    absent.mx_domains = {"example.org"};
    auto j = judge_tlsa(absent);
    EXPECT_EQ(j.result.level, critical);
    EXPECT_EQ(j.result.publish.size(), 1u);
}

TEST(JudgeTlsa, StaleRecordsOnceTheNextKeyIsKnown) {
    auto stale = rdata(3, 1, 1, *certs().server("mx.example.org", t::utc(2027, 1, 1)));
    auto in = inputs({rdata(3, 1, 1, *certs().current), stale});
    EXPECT_EQ(judge_tlsa(in).result.level, ok);
    EXPECT_EQ(judge_tlsa(in).result.remove.size(), 1u);
    in.next = {certs().chain(certs().next)};
    auto j = judge_tlsa(in);
    EXPECT_EQ(j.result.level, warning);
    EXPECT_TRUE(mentions(j.result, "stale"));
    EXPECT_TRUE(mentions(j.result, "not published"));
    EXPECT_EQ(j.next.gate, critical);
}

TEST(JudgeTlsa, GateOpensTwiceTheTtlAfterFirstSighting) {
    auto next_record = rdata(3, 1, 1, *certs().next);
    auto in = inputs({rdata(3, 1, 1, *certs().current), next_record});
    in.next = {certs().chain(certs().next)};
    in.first_seen[presentation(next_record)] = now - seconds(7199);
    // Without the signatures, the TTL as signed is unknown: not yet, however long ago.
    in.at = now + hours(24);
    EXPECT_EQ(judge_tlsa(in).next.gate, warning);
    in.at = now;
    in.lookup.signatures = dns::signature_window{now - hours(1), now + hours(24 * 14), 3600};
    auto waiting = judge_tlsa(in);
    EXPECT_EQ(waiting.result.level, ok);
    EXPECT_EQ(waiting.next.gate, warning);
    EXPECT_TRUE(waiting.next.published);
    ASSERT_TRUE(waiting.next.may_switch_at);
    EXPECT_EQ(*waiting.next.may_switch_at, now + seconds(1));
    in.at = now + seconds(1);
    EXPECT_EQ(judge_tlsa(in).next.gate, ok);
    // The RRset's TTL as signed counts, not what a cache has left of it.
    in.lookup.signatures = dns::signature_window{now - hours(1), now + hours(24 * 14), 7200};
    EXPECT_EQ(judge_tlsa(in).next.gate, warning);
    // Unrecorded: never early.
    in.first_seen.clear();
    EXPECT_EQ(judge_tlsa(in).next.gate, warning);
}

TEST(JudgeTlsa, NothingIsStaleWhileTheCertificateInUseIsUnmatched) {
    auto old_key = rdata(3, 1, 1, *certs().server("mx.example.org", t::utc(2027, 1, 1)));
    auto j = judge_tlsa(inputs({old_key}));
    EXPECT_EQ(j.result.level, critical);
    EXPECT_TRUE(j.result.remove.empty());
    EXPECT_EQ(j.result.publish.size(), 1u);
}

TEST(JudgeTlsa, EveryNextChainMustBePublished) {
    auto other_next = certs().server("mx.example.org", t::utc(2027, 6, 1));
    auto in = inputs({rdata(3, 1, 1, *certs().current), rdata(3, 1, 1, *certs().next)});
    in.lookup.signatures = dns::signature_window{now - hours(1), now + hours(24 * 14), 3600};
    in.next = {certs().chain(certs().next), certs().chain(other_next)};
    for (const auto& rd : in.lookup.rdata) {
        in.first_seen[presentation(rd)] = now - hours(24);
    }
    auto j = judge_tlsa(in);
    EXPECT_FALSE(j.next.published);
    EXPECT_EQ(j.next.gate, critical);
    EXPECT_EQ(j.result.publish.size(), 1u);
    in.next.pop_back();
    EXPECT_EQ(judge_tlsa(in).next.gate, ok);
}

TEST(JudgeTlsa, SignaturesCloseToExpiry) {
    auto in = inputs({rdata(3, 1, 1, *certs().current)});
    in.lookup.signatures = dns::signature_window{now - hours(24), now + hours(12), 3600};
    auto j = judge_tlsa(in);
    EXPECT_EQ(j.result.level, warning);
    EXPECT_TRUE(mentions(j.result, "signer"));
}

TEST(JudgeTlsa, WithoutAChainOnlyDnsIsJudged) {
    auto in = inputs({rdata(3, 1, 1, *certs().next)});
    in.current.clear();
    auto j = judge_tlsa(in);
    EXPECT_EQ(j.result.level, ok);
    EXPECT_TRUE(j.result.remove.empty());
}

} // namespace
} // namespace mailseal::monitor
