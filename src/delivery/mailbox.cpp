// SPDX-License-Identifier: Apache-2.0
#include <cerrno>
#include <sys/stat.h>

#include <mailseal/delivery/mailbox.hpp>
#include <mailseal/log/log.hpp>
#include <mailseal/util/errno_text.hpp>

namespace mailseal::delivery {

bool verification_touches_filesystem(const config::config& cfg) {
    // Relaying, the next hop knows its users: it answers each RCPT itself.
    return cfg.store.kind == config::store_kind::maildir &&
           cfg.mailbox.on_missing == config::missing_maildir::refuse;
}

std::variant<recipient::recipient, lmtp::reply> verify_recipient(const config::config& cfg,
                                                                 const lmtp::address& address) {
    auto rcpt = recipient::resolve(cfg, address);
    if (!rcpt) {
        return lmtp::reply(lmtp::replies::unknown_recipient);
    }
    if (!verification_touches_filesystem(cfg)) {
        return std::move(*rcpt);
    }
    struct stat st {};
    if (::stat(rcpt->maildir->c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            return std::move(*rcpt);
        }
        return lmtp::reply(lmtp::replies::unknown_recipient);
    }
    if (errno == ENOENT || errno == ENOTDIR) {
        return lmtp::reply(lmtp::replies::unknown_recipient);
    }
    log::warning("mailbox-check-failed", {{"rcpt", "<" + address.str() + ">"},
                                          {"maildir", rcpt->maildir->string()},
                                          {"error", util::errno_text(errno)}});
    return lmtp::reply(lmtp::replies::local_error);
}

} // namespace mailseal::delivery
