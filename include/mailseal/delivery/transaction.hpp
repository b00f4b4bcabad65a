#pragma once

/// One LMTP transaction's deliveries: from the envelope and the streamed body to one reply per
/// recipient.
///
/// Between the envelope and the store sits the per-recipient decision of what to store
/// (`disposition`). Today every accepted recipient's copy is stored as received; the sealing
/// stage adds the other outcomes (sealed, passed through, deferred, refused) at this seam, with
/// the reason logged on the delivery line.
///
/// All member functions block (file writes, fsync): the server runs them on its worker pool,
/// never on the event loop. One transaction is used by one thread at a time.
///
/// Failure policy (Postfix virtual(8)'s rule): a recipient whose Maildir is missing and may not
/// be created bounces (550 5.1.1), a full mailbox follows the configured quota reply, and every
/// other problem defers (4xx) so the MTA retries. A failure for one recipient never affects
/// another. Nothing is answered 250 before its file is fsync'd, renamed into new/ and new/ is
/// fsync'd.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <mailseal/config/config.hpp>
#include <mailseal/delivery/mailbox.hpp>
#include <mailseal/lmtp/reply.hpp>
#include <mailseal/lmtp/session.hpp>
#include <mailseal/store/maildir.hpp>

namespace mailseal::delivery {

/// Where the transaction came from, for trace headers and logs.
struct transaction_info {
    std::string session_id;
    std::string transaction_id;
    /// Client as seen by the listener, e.g. "127.0.0.1" or "unix".
    std::string peer;
    /// Our hostname, for Received: and Maildir names.
    std::string hostname;
};

/// What is stored for one recipient.
enum class disposition {
    as_received, ///< the message as received, with trace headers prepended
};
std::string_view to_string(disposition);

/// Maps a store failure to the reply for that recipient (the only store → reply boundary).
lmtp::reply to_reply(const store::failure& failure, config::quota_reply over_quota);

/// The trace header fields prepended to one recipient's copy: Return-Path, Delivered-To and a
/// Received: line naming the LMTP transaction (RFC 5321 §4.4). CRLF line ends, like the
/// message they precede (the store turns both into LF).
std::string trace_headers(const lmtp::envelope& env, const lmtp::address& recipient,
                          const transaction_info& info, std::chrono::system_clock::time_point now);

class transaction {
public:
    /// Decides and opens each recipient's delivery (tmp/ files are created now).
    transaction(const config::config& cfg, store::name_generator& names, lmtp::envelope env,
                transaction_info info);

    /// Appends body bytes to every recipient still being delivered.
    void write(std::string_view bytes);
    /// Completes recipient `index` (RCPT order): commits its file and returns its reply. Logs
    /// the delivery line.
    lmtp::reply finish(std::size_t index);
    /// Drops every uncommitted delivery (client gone, limit crossed, shutdown), logging each
    /// with `reason`.
    void abandon(std::string_view reason);

    std::size_t recipients() const { return recipients_.size(); }

private:
    struct recipient_delivery {
        lmtp::address address;
        disposition how = disposition::as_received;
        std::optional<store::delivery> file;
        /// Set once the outcome is known (a failure before the end, or the final reply).
        std::optional<lmtp::reply> outcome;
        /// For the log: the failure (step, path, errno) or the file name in new/.
        std::string detail;
    };

    void fail(recipient_delivery& rcpt, const store::failure& failure);
    /// The delivery line; `reply` is null for an abandoned delivery (no reply was given).
    void log_outcome(const recipient_delivery& rcpt, const lmtp::reply* reply) const;

    const config::config& config_;
    lmtp::envelope envelope_;
    transaction_info info_;
    std::chrono::steady_clock::time_point started_;
    std::uint64_t body_size_ = 0;
    std::vector<recipient_delivery> recipients_;
};

} // namespace mailseal::delivery
