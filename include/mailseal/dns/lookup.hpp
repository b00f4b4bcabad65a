// SPDX-License-Identifier: Apache-2.0
#pragma once

/// What a DNSSEC-validated lookup gives: its outcome, the records' raw RDATA and the TTL, and
/// the owner names of the per-user key records (SMIMEA, RFC 8162; OPENPGPKEY, RFC 7929).
/// Plain values, no I/O: the resolver (resolver.hpp) makes them, and each key format parses
/// the RDATA of its own record type.

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mailseal::dns {

/// How a lookup ended (see classify in resolver.cpp).
enum class outcome {
    secure_records, ///< DNSSEC-secure answer with records
    secure_absent,  ///< DNSSEC-secure NXDOMAIN or NODATA: the user publishes no record
    insecure,       ///< unsigned zone (or no chain of trust to it): same as no record
    bogus,          ///< DNSSEC validation failed: never fall back
    failure,        ///< SERVFAIL, timeout, network or library error, cancellation: retry later
};

/// "secure", "secure-absent", "insecure", "bogus", "failure": the words logs, metrics and
/// tools use.
std::string_view to_string(outcome);

/// What the RRSIGs over an answer's RRset say (RFC 4034 §3.1): when the earliest of them
/// expires, when the latest became valid, and the RRset's TTL as signed (a resolver's cache
/// counts its TTL down; the original TTL is what caches elsewhere may hold it for).
struct signature_window {
    std::chrono::system_clock::time_point inception;
    std::chrono::system_clock::time_point expiration;
    std::uint32_t original_ttl = 0;
};

/// The result of one lookup.
struct lookup_result {
    outcome result = outcome::failure;
    /// The name that was queried, and the RR type.
    std::string owner;
    std::uint16_t rr_type = 0;
    /// For secure_records: each RR's RDATA (without RDLENGTH), in answer order.
    std::vector<std::vector<std::uint8_t>> rdata;
    /// The RRset's TTL (for secure_records), or the negative answer's.
    std::uint32_t ttl = 0;
    /// The answer was NXDOMAIN (rather than NODATA); meaningful for secure_absent.
    bool nxdomain = false;
    /// For secure_records: the signatures over the records, when the answer carried them.
    std::optional<signature_window> signatures;
    /// Why: unbound's why_bogus text for bogus; the rcode name, ub_strerror() text, "timeout"
    /// or "cancelled" for failure; empty otherwise.
    std::string detail;
};

/// The owner name of a user's key records, as RFC 8162 §3 and RFC 7929 §3 both build it: the
/// SHA2-256 hash of the local part's exact octets, truncated to 28 octets and written as 56
/// lowercase hex digits, then `label` (`_smimecert`, `_openpgpkey`), then the domain. The local
/// part is hashed as given (case, "+detail" and Unicode normalisation are the caller's policy);
/// the domain must already be in A-label form (to_a_label() in dns/name.hpp).
///
/// hashed_owner_name("hugh", "_smimecert", "example.com") ==
///     "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._smimecert.example.com"
std::string hashed_owner_name(std::string_view local_part, std::string_view label,
                              std::string_view a_label_domain);

/// The RRSIGs in a DNS message's answer section that cover `rr_type`, folded into one window
/// (earliest expiration, latest inception, largest original TTL); nullopt when the message does
/// not parse or has none. Signature times are read as seconds since 1970 (RFC 4034 §3.1.5's
/// serial arithmetic only matters after 2106).
std::optional<signature_window> signatures_in(std::span<const std::uint8_t> message,
                                              std::uint16_t rr_type);

/// One MX record (RFC 1035 §3.3.9).
struct mx_record {
    std::uint16_t preference = 0;
    /// The exchange host, lowercase, without the trailing dot; "" for the root ("no mail",
    /// RFC 7505).
    std::string exchange;
};

/// MX RDATA as a resolver hands it on (the name uncompressed); nullopt when it does not parse.
std::optional<mx_record> parse_mx(std::span<const std::uint8_t> rdata);

/// RDATA in the RFC 3597 §5 generic form, for servers and signers that do not know the type:
/// "\# <length in octets> <RDATA in uppercase hex>", e.g. "\# 5 030000ABCD".
std::string generic_rdata(std::span<const std::uint8_t> rdata);

} // namespace mailseal::dns
