#pragma once

/// SMIMEA (RFC 8162) names and records: where a recipient's certificate is published, and the
/// record's fields. Pure functions, no I/O; the resolver (resolver.hpp) does the lookups.
///
/// Failure policy: nothing here throws. A domain that is not a valid host name, in either
/// U-label or A-label form, gives std::nullopt (the caller cannot look it up); RDATA shorter
/// than the three fixed octets gives std::nullopt (the record is unusable, RFC 6698 §4.1).
/// Judging whether a parsed record gives a usable key is mailseal::keys' job.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mailseal::dns {

/// The RR type of SMIMEA (RFC 8162 §2); its wire and presentation formats are TLSA's.
inline constexpr int smimea_rr_type = 53;

/// The owner name of a recipient's SMIMEA records, per RFC 8162 §3: the SHA2-256 hash of the
/// local part's exact octets, truncated to 28 octets and written as 56 lowercase hex digits,
/// then the label `_smimecert`, then the domain. The local part is hashed as given (RFC 8162
/// defines no canonical form: case, "+detail" and Unicode normalisation are the caller's
/// policy); the domain must already be an A-label domain (see to_a_label()).
///
/// smimea_owner_name("hugh", "example.com") ==
///     "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._smimecert.example.com"
std::string smimea_owner_name(std::string_view local_part, std::string_view a_label_domain);

/// The domain in the ASCII form DNS queries need: U-labels become A-labels (IDNA2008 with
/// UTS #46 non-transitional mapping, through libidn2), and ASCII letters are lowercased.
/// std::nullopt for a name that is not a host name: empty, an empty label (including a
/// trailing dot), a label over 63 octets or with characters other than letters, digits and
/// '-' (not first or last), more than 253 octets in all, or invalid IDNA.
///
/// to_a_label("Bücher.Example") == "xn--bcher-kva.example"
std::optional<std::string> to_a_label(std::string_view domain);

/// One SMIMEA record's RDATA (RFC 6698 §2.1): certificate usage, selector, matching type and
/// the certificate association data. The values are kept as received: unknown ones, and data
/// that does not fit them, are for the key evaluation to reject.
struct smimea_record {
    std::uint8_t usage = 0;
    std::uint8_t selector = 0;
    std::uint8_t matching_type = 0;
    std::vector<std::uint8_t> data;

    bool operator==(const smimea_record&) const = default;
};

/// Splits raw RDATA (as libunbound returns it, without RDLENGTH) into its fields. std::nullopt
/// when it is shorter than the three one-octet fields; empty association data is accepted here
/// and judged unusable later.
std::optional<smimea_record> parse_smimea_rdata(std::span<const std::uint8_t> rdata);

/// The presentation form (RFC 6698 §2.2) as dig shows it, association data in uppercase hex
/// without spaces: "3 0 0 308203A1...". A record with empty association data has no valid
/// presentation form; it is written as the three numbers alone (use to_generic() for it).
std::string to_presentation(const smimea_record& record);

/// The RFC 3597 §5 generic form, for servers that do not know type 53:
/// "\# <RDATA length> <RDATA in uppercase hex>", e.g. "\# 5 030000ABCD".
std::string to_generic(const smimea_record& record);

} // namespace mailseal::dns
