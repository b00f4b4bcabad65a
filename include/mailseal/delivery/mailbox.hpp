#pragma once

/// Which recipients are ours, and where their mail goes.
///
/// A recipient is local when its domain is one of the configured domains (ASCII
/// case-insensitive). Its mailbox key is the local part with the recipient delimiter's extension
/// dropped (`user+tag` → `user`) and, when configured, ASCII-lowercased; the Maildir path is the
/// configured template with %u, %n and %d replaced.
///
/// Failure policy: a local part that cannot name a directory safely (empty after dropping the
/// extension, ".", "..", or holding '/' or NUL) is not a mailbox: such recipients are refused
/// with 550 5.1.1 like unknown users, never mapped to a path outside the mail root.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <mailseal/config/config.hpp>
#include <mailseal/lmtp/address.hpp>
#include <mailseal/lmtp/session.hpp>

namespace mailseal::delivery {

struct mailbox {
    /// Local part after dropping the extension and lowercasing: the mailbox's user name.
    std::string user;
    /// Lowercased domain.
    std::string domain;
    std::filesystem::path maildir;
};

/// The mailbox for a recipient of a local domain; nullopt when the domain is not local or the
/// local part cannot name a mailbox.
std::optional<mailbox> resolve(const config::config& cfg, const lmtp::address& recipient);

/// Expands a Maildir template (%u, %n, %d, %%).
std::string expand_template(const std::string& pattern, const std::string& user,
                            const std::string& domain);

/// The Maildirs that exist now under the configured template (%u, %n, %d matched as
/// wildcards), for start-up housekeeping such as removing stale tmp/ files.
std::vector<std::filesystem::path> existing_maildirs(const config::config& cfg);

/// The RCPT TO policy: local domain, usable local part, and a Maildir that exists unless
/// missing ones are created. Refusals are 550 5.1.1.
class local_recipients : public lmtp::recipient_policy {
public:
    explicit local_recipients(const config::config& cfg) : config_(cfg) {}
    std::optional<lmtp::reply> check(const lmtp::address& recipient) override;

private:
    const config::config& config_;
};

} // namespace mailseal::delivery
