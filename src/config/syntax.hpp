// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The grammars of the configuration's string values (sizes, durations, listener addresses,
/// domain names, Maildir templates) and TOML literal output. No toml++ here: these are pure
/// functions of text, shared by the loader (config.cpp) and describe() (describe.cpp).
///
/// Checks return std::nullopt when the text is valid, or a reason phrased to follow "must be"
/// style messages, without the ", got <value>" tail that the loader appends.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <variant>

#include <mailseal/config/config.hpp>

namespace mailseal::config::detail {

/// One suffix of a scaled number: "50M" is 50 * 1024 * 1024, "5m" is 5 * 60.
struct unit {
    char suffix;
    std::int64_t factor;
};

/// Suffixes of limits.message_size; 1024-based, so "1K" is 1024 bytes.
inline constexpr unit size_units[] = {{'K', 1024}, {'M', 1024 * 1024}, {'G', 1024 * 1024 * 1024}};
/// Suffixes of the timeouts.
inline constexpr unit duration_units[] = {{'s', 1}, {'m', 60}, {'h', 3600}};

enum class number_error {
    syntax,   ///< not DIGITS with an optional suffix
    too_large ///< the value does not fit in a TOML integer (int64)
};

/// Parses DIGITS followed by at most one of `units`' suffixes (no suffix: factor 1).
std::variant<std::int64_t, number_error> parse_scaled(std::string_view text,
                                                      std::span<const unit> units);

/// Splits "a.b.c.d:port" or "[v6]:port" into an address (without brackets) and a port, or
/// returns the reason it cannot. The address must be numeric: a listener must not depend on
/// DNS at start-up.
std::variant<tcp_listener, std::string> parse_tcp_address(std::string_view text);

/// Checks a domain name: dot-separated labels of 1..63 octets, 255 octets in all, each of
/// ASCII letters, digits and '-' (not first or last). With `allow_utf8`, labels may also hold
/// non-ASCII UTF-8 (internationalised names written as U-labels, RFC 5890 §2.3.2.1).
std::optional<std::string> check_domain(std::string_view name, bool allow_utf8);

/// The form two spellings of one domain share: its A-label (IDNA2008 with UTS #46 mapping,
/// libidn2), so that bücher.example and xn--bcher-kva.example compare equal; the name
/// ASCII-lowercased when it is no valid IDNA name.
std::string domain_key(std::string_view domain);

/// Checks a DNS server address as libunbound takes it (ub_ctx_set_fwd, ub_ctx_set_stub):
/// a numeric IPv4 or IPv6 address (no brackets, no host name: resolving the resolver would
/// need DNS), optionally followed by "@port" with a port of 1..65535.
std::optional<std::string> check_dns_server(std::string_view text);

/// Checks a DNS zone name for a stub zone: a domain name in ASCII (A-labels) ending in '.',
/// or "." for the root.
std::optional<std::string> check_zone_name(std::string_view name);

/// Whether `text` is one DS or DNSKEY record in zone-file format (a field after the owner
/// name is the type), as ub_ctx_add_ta() takes it.
bool is_trust_anchor_record(std::string_view text);

/// Checks a Maildir template: absolute, escapes limited to %u %n %d %%, and per-recipient.
std::optional<std::string> check_maildir_template(std::string_view tmpl);

/// `text` as a TOML basic string literal, quotes included.
std::string toml_string(std::string_view text);

/// `mode` as a TOML octal integer literal, such as "0o660".
std::string toml_octal(mode_t mode);

/// A tcp listener as the "IPv4:port" or "[IPv6]:port" text parse_tcp_address() reads.
std::string format_tcp_address(const tcp_listener& listener);

} // namespace mailseal::config::detail
