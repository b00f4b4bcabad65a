// SPDX-License-Identifier: Apache-2.0
#pragma once

/// One recipient, normalised once: when its RCPT is accepted (or a tool is given an address),
/// and then carried to key discovery, sealing policy and the store, so that every later step
/// sees the same local part, domain and mailbox.
///
/// A recipient is local when its domain is one of the configured domains (ASCII
/// case-insensitive). Its base local part is the local part with the recipient delimiter's
/// extension dropped (`user+tag` → `user`), case kept: keys are looked up and certificates
/// checked for it. Its user name is the base local part, ASCII-lowercased when configured: the
/// mailbox is named by it, and so are the local key store's directories and policy rules. The
/// Maildir path is the configured template with %u, %n and %d replaced.
///
/// `<Postmaster>` without a domain (which RFC 5321 §4.5.1 requires every server to accept) is
/// postmaster of the first configured domain.
///
/// Failure policy: nothing here throws or refuses. A local part that cannot name a directory
/// safely (empty after dropping the extension, ".", "..", or holding '/' or NUL) gives no
/// Maildir, so such recipients are refused like unknown users, never mapped to a path outside
/// the mail root; a domain that is not a valid IDNA2008 host name has no A-label, so its keys
/// cannot be looked up.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <mailseal/config/config.hpp>
#include <mailseal/lmtp/address.hpp>

namespace mailseal::recipient {

struct recipient {
    /// The address as the client wrote it (RCPT TO, Delivered-To:, the next hop's RCPT).
    lmtp::address written;
    /// The local part without its address extension, case kept.
    std::string base_local_part;
    /// The mailbox's user name: the base local part, lowercased when
    /// mailbox.lowercase_local_part is set.
    std::string user;
    /// The domain, ASCII-lowercased, in the form it was written (U-labels stay U-labels); for
    /// a local domain, as mailbox.domains spells it, so that the U-label and A-label forms of
    /// one name (bücher.example, xn--bcher-kva.example) reach the same Maildir.
    std::string domain;
    /// The domain in A-label form (DNS queries, certificates, the key store); nullopt when it
    /// is not a valid host name.
    std::optional<std::string> a_label;
    /// Set for a recipient of a local domain whose user name can name a directory.
    std::optional<std::filesystem::path> maildir;

    /// base_local_part@domain in A-label form: the address keys must name.
    std::string key_address() const;
};

/// Any address, normalised as delivery does; `maildir` is set only when the address is one of
/// ours.
recipient normalise(const config::config& cfg, const lmtp::address& address);

/// The recipient when its domain is local and its user name can name a mailbox; otherwise
/// nullopt.
std::optional<recipient> resolve(const config::config& cfg, const lmtp::address& address);

/// The local part without its address extension: "user+tag" -> "user" with delimiter "+". As
/// Postfix's split_addr(), a delimiter in first position starts no extension ("+list" stays).
std::string_view base_local_part(std::string_view delimiters, std::string_view local_part);

/// Expands a Maildir template (%u, %n, %d, %%).
std::string expand_template(const std::string& pattern, const std::string& user,
                            const std::string& domain);

/// The Maildirs that exist now under the configured template (%u, %n, %d matched as
/// wildcards), for start-up housekeeping such as removing stale tmp/ files.
std::vector<std::filesystem::path> existing_maildirs(const config::config& cfg);

} // namespace mailseal::recipient
