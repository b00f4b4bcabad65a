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
enum class log_level { debug, info, warning, error };

std::string_view to_string(missing_maildir);
std::string_view to_string(quota_reply);
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

struct logging {
    log_level level = log_level::info;

    bool operator==(const logging&) const = default;
};

struct server_settings {
    /// Our name in greetings, LHLO replies and Received: lines; empty means gethostname().
    std::string hostname;
    /// Threads that run blocking work (file writes, fsync) off the event loop.
    std::size_t workers = 4;

    bool operator==(const server_settings&) const = default;
};

struct config {
    server_settings server;
    std::vector<listener> listeners;
    /// Domains (lowercase) whose recipients mailseal delivers; everything else is 550 5.1.1.
    std::vector<std::string> local_domains;
    mailbox_settings mailbox;
    struct limits limits;
    struct logging logging;

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

/// Reads and validates a configuration file. Of several errors, the one reported is the first
/// in the file; a missing required key (listen, mailbox.domains) comes only after all others.
std::variant<config, error> load_file(const std::filesystem::path& path);
/// Validates a configuration held in memory; `source_name` stands for the file in errors.
std::variant<config, error> load_string(std::string_view toml, std::string_view source_name);

/// The effective configuration (defaults filled in) as TOML that load_string() accepts.
std::string describe(const config&);

} // namespace mailseal::config
