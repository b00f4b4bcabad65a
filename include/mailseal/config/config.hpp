// SPDX-License-Identifier: Apache-2.0
#pragma once

/// mailseal's configuration: one TOML file (see examples/mailseal.toml for every key).
///
/// Failure policy: the file is checked whole before anything starts. An unknown key, a wrong
/// type, an out-of-range value or a missing required key is an error naming file, line, column
/// and the key's dotted path; the daemon refuses to start on the first one.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <variant>
#include <vector>

#include <mailseal/seal/openpgp/options.hpp>
#include <mailseal/seal/smime/options.hpp>

namespace mailseal::config {

struct unix_listener {
    std::filesystem::path path;
    mode_t mode = 0660;
    /// Owner and group of the socket file; empty keeps the process's own.
    std::string owner;
    std::string group;

    bool operator==(const unix_listener&) const = default;
};

struct tcp_listener {
    /// Numeric IPv4 or IPv6 address (no host names: a listener must not depend on DNS).
    std::string address;
    std::uint16_t port = 24;

    bool operator==(const tcp_listener&) const = default;
};

using listener = std::variant<unix_listener, tcp_listener>;

enum class missing_maildir { create, refuse };
enum class quota_reply { temporary, permanent };
/// What becomes of a delivered file's pages in the page cache once they are on disk.
enum class page_cache_policy { drop, keep };
enum class log_level { debug, info, warning, error };

std::string_view to_string(missing_maildir);
std::string_view to_string(quota_reply);
std::string_view to_string(page_cache_policy);
std::string_view to_string(log_level);

struct mailbox_settings {
    /// Maildir path for a recipient: %u full address, %n local part, %d domain, %% a percent
    /// sign. The local part is taken after the recipient delimiter's extension is dropped and
    /// lowercasing is applied; the domain is always lowercased.
    std::string maildir = "/var/vmail/%d/%n/Maildir";
    /// Lowercase the (ASCII letters of the) local part before mapping it to a mailbox.
    bool lowercase_local_part = true;
    /// Characters that start an address extension: with "+", user+tag@d delivers to user's
    /// mailbox. Empty disables extensions.
    std::string recipient_delimiter = "+";
    missing_maildir on_missing = missing_maildir::create;
    /// Mode of directories created for a missing Maildir.
    mode_t create_mode = 0700;
    /// EDQUOT: 452 4.2.2 (temporary, the MTA retries) or 552 5.2.2 (permanent, it bounces).
    quota_reply over_quota = quota_reply::temporary;
    /// "drop": a delivered file's pages leave the page cache once on disk (see
    /// store::maildir_options::drop_from_page_cache); "keep": the kernel decides.
    page_cache_policy page_cache = page_cache_policy::drop;

    bool operator==(const mailbox_settings&) const = default;
};

struct limits {
    std::uint64_t message_size = 50ull * 1024 * 1024;
    /// Each recipient of a transaction holds an open file while the message streams in, so the
    /// default is the RFC minimum; the MTA sends further recipients in another transaction.
    std::size_t recipients = 100;
    std::size_t connections = 100;
    std::size_t command_line_length = 512;
    std::size_t data_line_length = 1000;
    std::chrono::seconds idle_timeout{300};
    std::chrono::seconds command_timeout{300};
    std::chrono::seconds data_timeout{300};

    bool operator==(const limits&) const = default;
};

/// logfmt (`key=value`, for people and grep) or JSON (one object per line, for collectors).
enum class log_format { logfmt, json };
std::string_view to_string(log_format);

/// Where log lines go: standard error (journald takes it under systemd) or syslog(3) with
/// facility mail and ident "mailseal", beside Postfix's and Dovecot's lines.
enum class log_output { standard_error, syslog };
std::string_view to_string(log_output);

struct logging {
    log_level level = log_level::info;
    log_format format = log_format::logfmt;
    log_output output = log_output::standard_error;

    bool operator==(const logging&) const = default;
};

struct server_settings {
    /// Our name in greetings, LHLO replies and Received: lines; empty means gethostname().
    std::string hostname;
    /// Threads that run blocking work (file writes, fsync) off the event loop.
    std::size_t workers = 4;
    /// The user and group to run as after binding the listeners when started as root (the
    /// group defaults to the user's primary group). Started as root without a user, `serve`
    /// refuses to run.
    std::string user;
    std::string group;

    bool operator==(const server_settings&) const = default;
};

/// An authoritative server set for one zone (unbound's stub-zone).
struct stub_zone {
    std::string zone;
    /// "IP" or "IP@port" (IPv6 without brackets, as unbound takes it).
    std::vector<std::string> servers;

    bool operator==(const stub_zone&) const = default;
};

/// Key discovery through DNS: SMIMEA (RFC 8162) validated with DNSSEC by libunbound.
struct dns_settings {
    /// DNSSEC trust anchors, zone-file DS or DNSKEY lines (unbound's auto-trust-anchor-file
    /// format is not accepted: the file is read only). `serve` refuses to start when no anchor
    /// can be loaded, because every answer would then be insecure and nothing sealed.
    std::filesystem::path trust_anchor_file = "/usr/share/dns/root.key";
    /// Extra anchors, one DS or DNSKEY record each (e.g. for a private signed zone).
    std::vector<std::string> trust_anchors;
    /// Recursive resolvers to forward to ("IP" or "IP@port"); empty: full recursion.
    std::vector<std::string> forwarders;
    std::vector<stub_zone> stub_zones;
    /// An unbound.conf file whose settings are applied (ub_ctx_config); empty for none.
    std::filesystem::path unbound_conf;
    /// Deadline of one lookup (timer + ub_cancel); a lookup past it is a failure (4xx).
    std::chrono::seconds timeout{10};
    /// After a secure absence for the local part as written, also try it lowercased (RFC 8162
    /// hashes the exact octets; this is policy, off by default).
    bool lowercase_retry = false;

    bool operator==(const dns_settings&) const = default;
};

enum class key_preference { rsa_only_if_any, all };
std::string_view to_string(key_preference);

/// Which certificates are usable as a recipient's keys.
struct key_settings {
    /// Directory of PEM certificates per address (layout in docs/keys.md); empty for none.
    std::filesystem::path local_store;
    /// PEM bundle of CAs trusted to issue S/MIME certificates, for SMIMEA usage 1 (PKIX-EE);
    /// empty: usage-1 records are unusable.
    std::filesystem::path smime_ca_file;
    /// DANE-EE (usage 3): the DNS record is the binding, so an expired certificate is still
    /// used (and logged) unless this is false.
    bool accept_expired_dane_ee = true;
    /// With both RSA and EC keys, use only the RSA ones: a single key-agreement RecipientInfo
    /// makes NSS (Thunderbird) fail to open the message even for the RSA key's holder.
    key_preference preference = key_preference::rsa_only_if_any;
    /// How many recipients' evaluated keys are kept between messages; 0 keeps none.
    std::size_t cache_entries = 1000;

    bool operator==(const key_settings&) const = default;
};

/// What is stored for a recipient without a usable key (the policy table in seal/seal.hpp).
enum class no_key_action {
    plain,  ///< the message as received (the default: most users have no key)
    defer,  ///< 451 4.7.1: the MTA keeps retrying until the user publishes a key
    reject, ///< 550 5.7.1: the message bounces
};
/// keep: the outer message keeps the original header fields (clients list Subject and From).
/// protect: RFC 9788 header protection; the inner part carries the full header section and the
/// outer Subject is replaced.
enum class header_mode { keep, protect };

/// The formats a copy can be sealed in (seal/formats.hpp registers their implementations).
enum class seal_format { smime, openpgp };

/// What is done with mail that is already encrypted.
enum class passthrough_mode {
    verified, ///< stored as received once its structure shows it is (seal/encrypted.hpp)
    never,    ///< sealed like plaintext: one layer under the operator's control
};

std::string_view to_string(no_key_action);
std::string_view to_string(header_mode);
std::string_view to_string(seal_format);
std::string_view to_string(passthrough_mode);

/// The sealing policy of one recipient.
struct seal_policy {
    no_key_action on_no_key = no_key_action::plain;
    passthrough_mode passthrough = passthrough_mode::verified;
    header_mode headers = header_mode::keep;
    /// The formats to look keys up for, in order of preference: a recipient with usable keys
    /// of several formats gets one copy, in the first of them.
    std::vector<seal_format> formats{seal_format::smime, seal_format::openpgp};
    /// Each format's own options.
    seal::smime::options smime;
    seal::openpgp::options openpgp;

    bool operator==(const seal_policy&) const = default;
};

/// An override for one domain ("example.org") or one address ("ceo@example.org"); settings it
/// leaves out come from the domain's rule, then from [seal].
struct seal_rule {
    /// Lowercase domain, or user@domain where user is the mailbox's user name (extension
    /// dropped, lowercased when mailbox.lowercase_local_part is set).
    std::string match;
    std::optional<no_key_action> on_no_key;
    std::optional<passthrough_mode> passthrough;
    std::optional<seal::smime::content_cipher> cipher;
    std::optional<seal::smime::rsa_padding> padding;
    std::optional<header_mode> headers;
    std::optional<std::vector<seal_format>> formats;
    std::optional<seal::openpgp::symmetric_cipher> openpgp_cipher;

    bool operator==(const seal_rule&) const = default;
};

struct seal_settings {
    seal_policy defaults;
    /// The outer Subject under headers = "protect" (RFC 9788's hcp_baseline writes "[...]").
    std::string protected_subject = "[...]";
    std::vector<seal_rule> rules;

    bool operator==(const seal_settings&) const = default;

    /// The policy of user@domain: the address's rule over the domain's over the defaults.
    seal_policy policy_for(std::string_view user, std::string_view domain) const;
};

/// maildir: mailseal writes each copy into the recipient's Maildir. lmtp: it relays each copy
/// to the next hop's LMTP server (Dovecot), which stores it (quota, Sieve, indexes).
enum class store_kind { maildir, lmtp };
std::string_view to_string(store_kind);

struct store_settings {
    store_kind kind = store_kind::maildir;
    /// kind = "lmtp": the next hop, an absolute unix socket path or a numeric "IP:port".
    std::optional<listener> next_hop;
    /// Deadline of each step with the next hop (connecting gets at most 30s of it, each
    /// command's reply, each write) but the reply after the final dot.
    std::chrono::seconds timeout{60};
    /// Deadline of the reply after the final dot, which comes once Dovecot has stored the copy
    /// (and run Sieve). Below Postfix's lmtp_data_done_timeout (600s), which also covers
    /// mailseal's key lookups and sealing: a 250 that came after Postfix gave up would make it
    /// deliver the message again.
    std::chrono::seconds data_done_timeout{300};
    /// Idle connections to the next hop kept open for reuse.
    std::size_t idle_connections = 8;

    bool operator==(const store_settings&) const = default;
};

/// The Prometheus text endpoint (GET /metrics); off unless `listen` is set.
struct metrics_settings {
    /// A loopback or private TCP address ("127.0.0.1:9180") or an absolute unix socket path.
    std::optional<listener> listen;

    bool operator==(const metrics_settings&) const = default;
};

struct config {
    server_settings server;
    std::vector<listener> listeners;
    /// Domains (lowercase) whose recipients mailseal delivers; everything else is 550 5.1.1.
    std::vector<std::string> local_domains;
    mailbox_settings mailbox;
    store_settings store;
    struct limits limits;
    struct logging logging;
    dns_settings dns;
    key_settings keys;
    seal_settings seal;
    metrics_settings metrics;

    bool operator==(const config&) const = default;
};

/// A configuration error, located in the file.
struct error {
    std::string file;
    std::uint32_t line = 0; ///< 1-based; 0 when the error has no position (e.g. unreadable file)
    std::uint32_t column = 0;
    std::string key; ///< dotted path, e.g. "limits.message_size"; empty for syntax errors
    std::string message;

    bool operator==(const error&) const = default;

    /// "FILE:LINE:COLUMN: KEY: MESSAGE" (position and key omitted when absent).
    std::string str() const;
};

/// What a configuration is loaded for, which decides the keys it must have: the server needs
/// [[listen]] and mailbox.domains; local delivery (deliver, test-message) mailbox.domains; the
/// other tools (lookup, check, record, seal, reseal) nothing, the defaults filling the rest.
enum class purpose { serve, deliver, tool };

/// Reads and validates a configuration file. Of several errors, the one reported is the first
/// in the file; a missing required key (listen, mailbox.domains) comes only after all others.
std::variant<config, error> load_file(const std::filesystem::path& path,
                                      purpose use = purpose::serve);
/// Validates a configuration held in memory; `source_name` stands for the file in errors.
std::variant<config, error> load_string(std::string_view toml, std::string_view source_name,
                                        purpose use = purpose::serve);

/// The effective configuration (defaults filled in) as TOML that load_string() accepts.
std::string describe(const config&);
/// The same as a JSON object, for `check-config --json`.
std::string describe_json(const config&);

/// Settings that the mail clients users read with handle badly, one text each, naming where
/// they are set ([seal] or a [[seal.policy]]): S/MIME copies with AES-GCM (Thunderbird shows a
/// blank body with no error, mutt an unsupported attachment), with RSA-OAEP (gpgsm, and mutt
/// with it, reports a misleading "No secret key"), and S/MIME copies under
/// headers = "protect" (Thunderbird keeps showing the outer "[...]" Subject: it reads
/// protected headers only in OpenPGP mail). For check-config and start-up warnings.
std::vector<std::string> client_warnings(const config&);

/// A socket path, or "IPv4:port" / "[IPv6]:port", as [metrics] listen and [store] next_hop
/// are written.
std::string endpoint_text(const listener&);

} // namespace mailseal::config
