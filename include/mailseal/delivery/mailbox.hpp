// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Which recipients are ours: the verdict on each RCPT TO.
///
/// Failure policy: a recipient that is not ours (foreign domain, a local part that cannot name
/// a mailbox, or no Maildir while missing ones are not created) is refused with 550 5.1.1; when
/// a Maildir's existence cannot be told (a permission or I/O error is no verdict on the user)
/// the answer is 451 4.3.0, so the MTA retries.

#include <variant>

#include <mailseal/config/config.hpp>
#include <mailseal/lmtp/address.hpp>
#include <mailseal/lmtp/reply.hpp>
#include <mailseal/recipient/recipient.hpp>

namespace mailseal::delivery {

/// The recipient, normalised once for the rest of its way, or the reply that refuses it. Blocks
/// on the filesystem when verification_touches_filesystem(): the server then runs it on the
/// worker pool.
std::variant<recipient::recipient, lmtp::reply> verify_recipient(const config::config& cfg,
                                                                 const lmtp::address& address);

/// Whether verify_recipient() looks at the filesystem (only when missing Maildirs are refused,
/// and never when relaying to a next hop, which judges its users itself); otherwise it is
/// cheap enough to run on the event loop.
bool verification_touches_filesystem(const config::config& cfg);

} // namespace mailseal::delivery
