// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Judging a mail server's TLSA RRset (RFC 6698, as SMTP uses it: RFC 7672) against the
/// certificate chains the server presents: pure, no I/O, the time given.
///
/// A record matches a chain when it is a DANE-EE record (usage 3) whose association data is
/// the server certificate's, or a DANE-TA record (usage 2) that matches a CA certificate of the
/// chain through which the server certificate verifies at the judged time and names the host.
/// PKIX usages (0, 1) are unusable for SMTP (RFC 7672 §3.1.3), as are unknown parameters.
///
/// Records that match nothing are named for removal only while every chain in use matches: an
/// operator whose new certificate is not published yet may want to go back to the old one.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <mailseal/dns/lookup.hpp>
#include <mailseal/monitor/chain.hpp>
#include <mailseal/monitor/verdict.hpp>

namespace mailseal::monitor {

/// TLSA's RR type (RFC 6698 §7.1).
inline constexpr std::uint16_t tlsa_rr_type = 52;

/// The TLSA owner name of a service: "_25._tcp.mx.example.org" (RFC 6698 §3).
std::string tlsa_owner(std::string_view host, std::uint16_t port);

/// A TLSA record's RDATA as the monitor names it everywhere (lines to remove, first
/// sightings): its presentation form, "3 1 1 <hex>", or the RFC 3597 form when it is shorter
/// than its three fields.
std::string tlsa_presentation(std::span<const std::uint8_t> rdata);

/// Everything one judgement needs.
struct tlsa_inputs {
    /// The host's name as the MX records give it (A-label form) and the port.
    std::string host;
    std::uint16_t port = 25;
    /// The validated lookup of TLSA at tlsa_owner(host, port).
    dns::lookup_result lookup;
    /// The chains the server presents now: every one of them must be matched, since a sender
    /// may be handed any (RSA or ECDSA).
    std::vector<served_chain> current;
    /// The chains staged to replace them, when known (an RSA and an ECDSA one, or one).
    std::vector<served_chain> next;
    /// Local domains whose MX records name this host: without TLSA records, a critical finding.
    std::vector<std::string> mx_domains;
    /// When each published record (by presentation form) was first seen, as far as anyone
    /// recorded.
    std::map<std::string, std::chrono::system_clock::time_point> first_seen;
    /// The time to judge at: certificate and signature expiry, and how long a record has been
    /// visible, count to here.
    std::chrono::system_clock::time_point at;
    int warn_days = 21;
};

/// What `--gate` asks: may the staged next certificates go live now?
struct next_key_state {
    /// Published in a secure answer, a record matching each next chain.
    bool published = false;
    /// When the last of the next chains got a matching record, as first seen; nullopt when
    /// nobody recorded it.
    std::optional<std::chrono::system_clock::time_point> visible_since;
    /// visible_since plus twice the RRset's TTL as signed (the RRSIG's original TTL): caches
    /// still holding the RRset without the record have expired it by then.
    std::optional<std::chrono::system_clock::time_point> may_switch_at;
    /// ok: may switch now; warning: published, wait (or the answer carried no signatures to
    /// read the TTL from, or the first sighting is unknown); critical: not published, or no
    /// secure answer; unknown: the lookup failed.
    severity gate = critical;
    std::string why;
};

struct tlsa_judgement {
    verdict result;
    /// Meaningful when inputs.next is not empty.
    next_key_state next;
};

tlsa_judgement judge_tlsa(const tlsa_inputs& inputs);

/// The zone-file line publishing the DANE-EE 3 1 1 record for a chain's server certificate.
std::optional<std::string> tlsa_line(const std::string& owner, std::uint32_t ttl,
                                     const served_chain& chain);

} // namespace mailseal::monitor
