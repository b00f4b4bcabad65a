// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <cmath>
#include <set>

#include <openssl/x509_vfy.h>

#include <mailseal/monitor/tlsa.hpp>
#include <mailseal/seal/format.hpp>
#include <mailseal/seal/smime/evaluate.hpp>
#include <mailseal/seal/smime/openssl.hpp>

namespace mailseal::monitor {
namespace {

using seal::smime::c_ptr;
using seal::smime::smimea_record;
using time_point = std::chrono::system_clock::time_point;

/// A signer refreshes its signatures days before they expire; closer than this to expiry,
/// it has stopped.
constexpr auto signature_margin = std::chrono::hours(48);

std::optional<time_point> not_after(X509& cert) {
    return seal::smime::describe(cert, "").not_after;
}

std::optional<time_point> not_before(X509& cert) {
    return seal::smime::describe(cert, "").not_before;
}

double days_between(time_point from, time_point to) {
    return std::chrono::duration<double>(to - from).count() / 86400.0;
}

std::string whole_days(double days) {
    auto n = static_cast<long>(std::floor(std::abs(days)));
    return std::to_string(n) + (n == 1 ? " day" : " days");
}

std::string duration_text(std::chrono::seconds s) {
    auto seconds = s.count();
    if (seconds % 3600 == 0 && seconds >= 3600) {
        return std::to_string(seconds / 3600) + " h";
    }
    if (seconds % 60 == 0 && seconds >= 60) {
        return std::to_string(seconds / 60) + " min";
    }
    return std::to_string(seconds) + " s";
}

std::string subject_of(X509& cert) {
    auto report = seal::smime::describe(cert, "");
    return report.subject + " (" + report.key_description + ")";
}

bool is_self_signed(X509& cert) {
    return X509_check_issued(&cert, &cert) == X509_V_OK;
}

/// Whether a DANE-EE record names the chain's server certificate.
bool names_server(const smimea_record& record, const served_chain& chain) {
    if (chain.certificates.empty()) {
        return false;
    }
    auto data = seal::smime::association_data(*chain.certificates.front(), record.selector,
                                              record.matching_type);
    return data && *data == record.data;
}

/// The server certificate verified up to the chain's certificate `anchor` (a DANE-TA trust
/// anchor, RFC 7671 §5.2.2) at `at`, with `host` as the name it must bear (RFC 7672 §3.2.3):
/// nullopt, or why not.
std::optional<std::string> verify_to(const served_chain& chain, std::size_t anchor,
                                     const std::string& host, time_point at) {
    c_ptr<X509_STORE> store(X509_STORE_new());
    c_ptr<STACK_OF(X509)> untrusted(sk_X509_new_null());
    c_ptr<X509_STORE_CTX> context(X509_STORE_CTX_new());
    if (!store || !untrusted || !context ||
        X509_STORE_add_cert(store.get(), chain.certificates[anchor].get()) != 1) {
        return "out of memory";
    }
    for (std::size_t i = 1; i < chain.certificates.size(); ++i) {
        X509* cert = chain.certificates[i].get();
        if (sk_X509_push(untrusted.get(), cert) <= 0) {
            return "out of memory";
        }
        X509_up_ref(cert);
    }
    if (X509_STORE_CTX_init(context.get(), store.get(), chain.certificates.front().get(),
                            untrusted.get()) != 1) {
        return "out of memory";
    }
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(context.get());
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_USE_CHECK_TIME);
    X509_VERIFY_PARAM_set_time(param, std::chrono::system_clock::to_time_t(at));
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (X509_verify_cert(context.get()) == 1) {
        return std::nullopt;
    }
    return X509_verify_cert_error_string(X509_STORE_CTX_get_error(context.get()));
}

/// How one usable record stands to one chain.
struct match {
    bool end_entity = false; ///< a DANE-EE record naming the server certificate
    bool anchor = false;     ///< a DANE-TA record naming a CA of the chain that verifies
    std::size_t anchor_index = 0;
    std::string failure; ///< a DANE-TA record naming a CA, but the chain does not verify
    std::size_t failure_index = 0;
};

match match_record(const smimea_record& record, const served_chain& chain, const std::string& host,
                   time_point at) {
    match m;
    if (record.usage == 3) {
        m.end_entity = names_server(record, chain);
        return m;
    }
    for (std::size_t i = 1; i < chain.certificates.size(); ++i) {
        auto data = seal::smime::association_data(*chain.certificates[i], record.selector,
                                                  record.matching_type);
        if (!data || *data != record.data) {
            continue;
        }
        if (auto why = verify_to(chain, i, host, at)) {
            m.failure = *why;
            m.failure_index = i;
            continue;
        }
        m.anchor = true;
        m.anchor_index = i;
        return m;
    }
    return m;
}

/// Why a record cannot serve SMTP at all; nullopt for a usable one.
std::optional<std::string> unusable(const std::optional<smimea_record>& record) {
    if (!record) {
        return "shorter than its three fields";
    }
    if (record->usage == 0 || record->usage == 1) {
        return "PKIX usage " + std::to_string(record->usage) +
               ", which SMTP clients ignore (RFC 7672 §3.1.3)";
    }
    if (record->usage > 3) {
        return "unknown usage " + std::to_string(record->usage);
    }
    if (record->selector > 1 || record->matching_type > 2) {
        return "unknown selector or matching type";
    }
    std::size_t want = record->matching_type == 1 ? 32 : record->matching_type == 2 ? 64 : 0;
    if ((want != 0 && record->data.size() != want) || record->data.empty()) {
        return "association data of the wrong length";
    }
    return std::nullopt;
}

struct published {
    std::vector<std::uint8_t> rdata;
    std::optional<smimea_record> record;
    std::string presentation;
    std::optional<std::string> why_unusable;
};

} // namespace

std::string tlsa_owner(std::string_view host, std::uint16_t port) {
    return "_" + std::to_string(port) + "._tcp." + std::string(host);
}

std::string tlsa_presentation(std::span<const std::uint8_t> rdata) {
    auto record = seal::smime::parse_smimea_rdata(rdata);
    return record ? seal::smime::to_presentation(*record) : dns::generic_rdata(rdata);
}

std::optional<std::string> tlsa_line(const std::string& owner, std::uint32_t ttl,
                                     const served_chain& chain) {
    if (chain.certificates.empty()) {
        return std::nullopt;
    }
    auto data = seal::smime::association_data(*chain.certificates.front(), 1, 1);
    if (!data) {
        return std::nullopt;
    }
    return owner + ". " + std::to_string(ttl) + " IN TLSA " +
           seal::smime::to_presentation(smimea_record{3, 1, 1, *data});
}

namespace {

/// How the records stand to one chain.
struct chain_standing {
    bool by_end_entity = false;
    std::optional<std::size_t> by_anchor;
    /// Records naming a CA of the chain through which it does not verify, and why.
    std::vector<std::string> failures;
};

chain_standing stand(const std::vector<published>& records, std::vector<bool>& named,
                     const served_chain& chain, const std::string& host, time_point at) {
    chain_standing s;
    for (std::size_t i = 0; i < records.size(); ++i) {
        if (records[i].why_unusable) {
            continue;
        }
        auto m = match_record(*records[i].record, chain, host, at);
        if (m.end_entity || m.anchor || !m.failure.empty()) {
            // A record naming this chain's CA is not stale, even when the chain fails.
            named[i] = true;
        }
        s.by_end_entity = s.by_end_entity || m.end_entity;
        if (m.anchor && !s.by_anchor) {
            s.by_anchor = m.anchor_index;
        }
        if (!m.failure.empty()) {
            s.failures.push_back(
                records[i].presentation.substr(0, 5) + " names " +
                subject_of(*chain.certificates[m.failure_index]) +
                ", but the chain does not verify as of the judged time: " + m.failure);
        }
    }
    return s;
}

} // namespace

tlsa_judgement judge_tlsa(const tlsa_inputs& in) {
    tlsa_judgement out;
    verdict& v = out.result;
    v.kind = "tlsa";
    v.name = tlsa_owner(in.host, in.port);
    const auto& lookup = in.lookup;
    // The TTL other caches may hold the RRset for is the one it was signed with; what our
    // resolver has left of it is only a lower bound.
    std::uint32_t ttl = lookup.ttl;
    if (lookup.signatures) {
        ttl = std::max(ttl, lookup.signatures->original_ttl);
    }
    std::uint32_t suggested_ttl = ttl != 0 ? ttl : 3600;
    auto publish = [&](const served_chain& chain) {
        if (auto line = tlsa_line(v.name, suggested_ttl, chain)) {
            if (std::find(v.publish.begin(), v.publish.end(), *line) == v.publish.end()) {
                v.publish.push_back(*line);
            }
        }
    };
    auto gate = [&](severity s, std::string why) {
        out.next.gate = s;
        out.next.why = std::move(why);
    };

    v.summary = "TLSA " + std::string(dns::to_string(lookup.result));
    switch (lookup.result) {
    case dns::outcome::bogus:
        v.raise(critical, "DNSSEC bogus (" + lookup.detail +
                              "): DANE senders defer all mail to this host; re-sign the zone "
                              "or correct its DS");
        gate(critical, "the TLSA RRset is bogus");
        return out;
    case dns::outcome::failure:
        v.raise(unknown, "TLSA lookup failed: " + lookup.detail);
        gate(unknown, "the TLSA lookup failed: " + lookup.detail);
        return out;
    case dns::outcome::insecure:
        v.raise(critical, "the zone is not DNSSEC-signed (insecure answer): senders ignore TLSA "
                          "records there; sign the zone and publish its DS");
        gate(critical, "the zone is insecure");
        return out;
    case dns::outcome::secure_absent: {
        for (const auto& chain : in.current) {
            publish(chain);
        }
        for (const auto& chain : in.next) {
            publish(chain);
        }
        std::string domains;
        for (const auto& d : in.mx_domains) {
            domains += (domains.empty() ? "" : ", ") + d;
        }
        if (!in.mx_domains.empty()) {
            v.raise(critical, "no TLSA records, while the MX records of " + domains + " name " +
                                  in.host + ": DANE senders cannot authenticate it");
        } else {
            v.raise(warning, "no TLSA records: DANE is not in use for this host");
        }
        gate(critical, "no TLSA records are published");
        return out;
    }
    case dns::outcome::secure_records:
        break;
    }

    std::vector<published> records;
    for (const auto& rdata : lookup.rdata) {
        published p;
        p.rdata = rdata;
        p.record = seal::smime::parse_smimea_rdata(rdata);
        p.presentation = tlsa_presentation(rdata);
        p.why_unusable = unusable(p.record);
        records.push_back(std::move(p));
    }
    std::vector<bool> named(records.size(), false);
    v.summary = std::to_string(records.size()) + " TLSA record" + (records.size() == 1 ? "" : "s") +
                " (secure, TTL " + std::to_string(ttl) + ")";

    // The chains in use.
    bool all_matched = true;
    std::optional<double> days_left;
    auto track_expiry = [&](X509& cert) {
        if (auto expires = not_after(cert)) {
            double days = days_between(in.at, *expires);
            days_left = days_left ? std::min(*days_left, days) : days;
        }
    };
    for (const auto& chain : in.current) {
        if (chain.certificates.empty()) {
            continue;
        }
        X509& server = *chain.certificates.front();
        std::string label = subject_of(server) + " from " + chain.source;
        auto s = stand(records, named, chain, in.host, in.at);
        track_expiry(server);
        if (!s.by_end_entity && !s.by_anchor) {
            all_matched = false;
            if (!s.failures.empty()) {
                // The record is right; the chain is what fails (expired, or another name).
                std::string text = "no TLSA record matches the certificate in use, " + label +
                                   ": DANE senders defer mail to this host";
                for (const auto& f : s.failures) {
                    text += "; " + f;
                }
                v.raise(critical, text + "; renew the certificate (or publish its 3 1 1 "
                                         "record)");
            } else {
                v.raise(critical, "no TLSA record matches the certificate in use, " + label +
                                      ": DANE senders defer mail to this host");
            }
            publish(chain);
            continue;
        }
        if (s.by_end_entity) {
            v.note("a 3 x x record matches " + label);
        } else {
            X509& anchor = *chain.certificates[*s.by_anchor];
            track_expiry(anchor);
            if (is_self_signed(anchor)) {
                v.note("a 2 x x record matches the root CA " + subject_of(anchor) + " of " + label);
            } else {
                v.raise(warning, "only a 2 x x record matches, naming the intermediate CA " +
                                     subject_of(anchor) + " of " + label +
                                     ": issuers change intermediates at renewals (Let's "
                                     "Encrypt picks one of several each time); publish a 3 1 1 "
                                     "record too");
                publish(chain);
            }
        }
        if (auto expires = not_after(server)) {
            double days = days_between(in.at, *expires);
            if (days < 0) {
                v.raise(warning, "the certificate in use expired " + whole_days(days) + " ago (" +
                                     seal::iso_time(*expires) +
                                     "): DANE-EE senders accept it, others do not; renew it");
            } else if (days < in.warn_days) {
                v.raise(warning, "the certificate in use expires in " + whole_days(days) + " (" +
                                     seal::iso_time(*expires) +
                                     "): renew it; with a new key, publish the next key's record "
                                     "first (mailseal record --tlsa --cert CURRENT --next NEW)");
            }
        }
    }
    v.days_to_expiry = days_left;

    // The staged next chains: each must be matched before the switch.
    if (!in.next.empty()) {
        bool published_all = true;
        std::optional<time_point> since; // the latest of each chain's earliest sighting
        bool since_known = true;
        std::vector<std::string> missing;
        for (const auto& next : in.next) {
            if (next.certificates.empty()) {
                continue;
            }
            X509& server = *next.certificates.front();
            // A certificate issued ahead of its switch may not be valid yet: verify as of then.
            auto verify_at = in.at;
            if (auto from = not_before(server)) {
                verify_at = std::max(verify_at, *from);
            }
            std::optional<time_point> chain_since;
            bool chain_published = false;
            for (std::size_t i = 0; i < records.size(); ++i) {
                if (records[i].why_unusable) {
                    continue;
                }
                auto m = match_record(*records[i].record, next, in.host, verify_at);
                if (!m.failure.empty()) {
                    // It names the next chain's CA: not stale, though the chain fails.
                    named[i] = true;
                }
                if (!m.end_entity && !m.anchor) {
                    continue;
                }
                named[i] = true;
                chain_published = true;
                auto seen = in.first_seen.find(records[i].presentation);
                if (seen != in.first_seen.end()) {
                    chain_since = chain_since ? std::min(*chain_since, seen->second) : seen->second;
                }
            }
            std::string label = subject_of(server) + " from " + next.source;
            if (!chain_published) {
                published_all = false;
                publish(next);
                missing.push_back(label);
                continue;
            }
            if (!chain_since) {
                since_known = false;
            } else {
                since = since ? std::max(*since, *chain_since) : chain_since;
            }
            bool same_key = false;
            for (const auto& chain : in.current) {
                same_key = same_key ||
                           (!chain.certificates.empty() &&
                            seal::smime::association_data(server, 1, 1) ==
                                seal::smime::association_data(*chain.certificates.front(), 1, 1));
            }
            v.note("the next key (" + label + ") is published" +
                   (same_key ? ": it is the current key, whose 3 1 1 record stays valid" : ""));
        }
        std::string twice = duration_text(std::chrono::seconds(2 * std::uint64_t{ttl}));
        if (!published_all) {
            std::string names;
            for (const auto& m : missing) {
                names += (names.empty() ? "" : "; ") + m;
            }
            v.raise(warning, "the next certificate's key is not published (" + names +
                                 "): publish its record at least " + twice +
                                 " (twice the TTL) before switching");
            gate(critical, "the next key is not published: publish the line below");
        } else if (!lookup.signatures) {
            // Without the signatures the TTL as signed is unknown: never open early.
            gate(warning, "published, but the answer carried no signatures to read the RRset's "
                          "TTL from; wait and ask again");
        } else if (!since_known || !since) {
            gate(warning,
                 "published, but its first sighting was not recorded; ask again in " + twice);
        } else {
            out.next.visible_since = since;
            out.next.may_switch_at = *since + std::chrono::seconds(2 * std::uint64_t{ttl});
            std::string seen_text = "first seen " + seal::iso_time(*since);
            if (in.at >= *out.next.may_switch_at) {
                gate(ok, "published, " + seen_text + ", more than " + twice +
                             " (twice the TTL) ago: switch now");
            } else {
                gate(warning, "published, " + seen_text + "; wait until " +
                                  seal::iso_time(*out.next.may_switch_at) + " (" + twice +
                                  ", twice the TTL, after the first sighting)");
            }
        }
        out.next.published = published_all;
        v.note("gate: " + out.next.why);
    }

    // What matches nothing. While a chain in use is unmatched, no record is called stale: the
    // operator may want to go back to the certificate it names.
    for (std::size_t i = 0; i < records.size(); ++i) {
        std::string line = v.name + ". IN TLSA " + records[i].presentation;
        if (records[i].why_unusable) {
            v.raise(warning, "an unusable record (" + *records[i].why_unusable + "): remove " +
                                 records[i].presentation);
            v.remove.push_back(line);
        } else if (!named[i] && !in.current.empty() && all_matched) {
            if (!in.next.empty()) {
                v.raise(warning, "a stale record matches neither the certificate in use nor the "
                                 "next one: remove " +
                                     records[i].presentation);
            } else {
                v.note("a record matches no certificate in use (a staged next key? name it with "
                       "--next); if stale, remove " +
                       records[i].presentation);
            }
            v.remove.push_back(line);
        }
    }
    if (in.current.empty()) {
        v.note("no certificate to match against: DNS alone judged");
    }

    // Signatures that expire before the judged time are only a warning: a signing server
    // replaces them days ahead, and an expired one makes the answer bogus (critical above).
    if (lookup.signatures && lookup.signatures->expiration < in.at + signature_margin) {
        bool before = lookup.signatures->expiration < in.at;
        v.raise(warning,
                "the signatures over the TLSA RRset expire at " +
                    seal::iso_time(lookup.signatures->expiration) +
                    (before ? ", before the judged time: the zone must be re-signed by "
                              "then, or the RRset turns bogus"
                            : ": signers refresh them days ahead; is the signer running?"));
    }
    return out;
}

} // namespace mailseal::monitor
