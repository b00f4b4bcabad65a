#pragma once

/// Which recipients are ours, and where their mail goes.
///
/// A recipient is local when its domain is one of the configured domains (ASCII
/// case-insensitive). Its mailbox key is the local part with the recipient delimiter's extension
/// dropped (`user+tag` → `user`) and, when configured, ASCII-lowercased; the Maildir path is the
/// configured template with %u, %n and %d replaced.
///
/// `<Postmaster>` without a domain (which RFC 5321 §4.5.1 requires every server to accept) is
/// postmaster of the first configured domain.
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
#include <mailseal/lmtp/reply.hpp>

namespace mailseal::delivery {

struct mailbox {
    /// Local part after dropping the extension and lowercasing: the mailbox's user name.
    std::string user;
    /// Lowercased domain.
    std::string domain;
    std::filesystem::path maildir;
};

/// The recipient's domain, lowercased; `<Postmaster>` without a domain is postmaster of the
/// first configured domain (RFC 5321 §4.5.1).
std::string recipient_domain(const config::config& cfg, const lmtp::address& recipient);

/// The local part without its address extension: "user+tag" -> "user" with delimiter "+". As
/// Postfix's split_addr(), a delimiter in first position starts no extension ("+list" stays).
std::string_view base_local_part(const config::config& cfg, std::string_view local_part);

/// The mailbox for a recipient of a local domain; nullopt when the domain is not local or the
/// local part cannot name a mailbox.
std::optional<mailbox> resolve(const config::config& cfg, const lmtp::address& recipient);

/// Expands a Maildir template (%u, %n, %d, %%).
std::string expand_template(const std::string& pattern, const std::string& user,
                            const std::string& domain);

/// The Maildirs that exist now under the configured template (%u, %n, %d matched as
/// wildcards), for start-up housekeeping such as removing stale tmp/ files.
std::vector<std::filesystem::path> existing_maildirs(const config::config& cfg);

/// The verdict on a RCPT TO: nothing accepts the recipient; 550 5.1.1 refuses one that is not
/// ours (foreign domain, unusable local part, or no Maildir while missing ones are not
/// created); 451 4.3.0 when the Maildir's existence cannot be told (a permission or I/O error
/// is no verdict on the user, so the MTA retries). Blocks on the filesystem: the server runs it
/// on the worker pool.
std::optional<lmtp::reply> verify_recipient(const config::config& cfg,
                                            const lmtp::address& recipient);

/// Whether verify_recipient() looks at the filesystem (only when missing Maildirs are refused,
/// and never when relaying to a next hop, which judges its users itself); otherwise it is
/// cheap enough to run on the event loop.
bool verification_touches_filesystem(const config::config& cfg);

} // namespace mailseal::delivery
