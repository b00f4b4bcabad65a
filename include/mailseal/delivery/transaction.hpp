// SPDX-License-Identifier: Apache-2.0
#pragma once

/// One LMTP transaction's deliveries: from the envelope, each recipient's keys and the streamed
/// body to one reply per recipient.
///
/// What each recipient's copy is, and its bytes, come from a seal::message_sealer; this class
/// stores the copies in Maildirs, or relays them to the next hop's LMTP server ([store] kind =
/// "lmtp", one transaction per recipient), and turns the outcomes into replies. When needs_keys()
/// says the held body reached its bound, the server waits for the missing key lookups before
/// reading on (TCP back-pressure).
///
/// All member functions block (file writes, fsync, encryption): the server runs them on its
/// worker pool, never on the event loop. One transaction is used by one thread at a time.
///
/// Failure policy (Postfix virtual(8)'s rule): a recipient whose Maildir is missing and may not
/// be created bounces (550 5.1.1), a full mailbox follows the configured quota reply, a bogus or
/// failed key lookup defers (451 4.7.5, 451 4.4.3), a missing key follows seal.on_no_key, and
/// every other problem defers (4xx) so the MTA retries. A failure for one recipient never
/// affects another. Nothing is answered 250 before its file is fsync'd, renamed into new/ and
/// new/ is fsync'd, or (relaying) before the next hop answered 250 for it; the next hop's own
/// refusals are passed back unchanged.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <mailseal/config/config.hpp>
#include <mailseal/lmtp/reply.hpp>
#include <mailseal/lmtp/session.hpp>
#include <mailseal/recipient/recipient.hpp>
#include <mailseal/relay/next_hop.hpp>
#include <mailseal/seal/sealer.hpp>
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
    /// The Received: line's "with" protocol; empty: LMTP (or UTF8LMTP, RFC 3848).
    std::string protocol = {};
};

/// Maps a store failure to the reply for that recipient (the only store → reply boundary).
lmtp::reply to_reply(const store::failure& failure, config::quota_reply over_quota);

/// The Received: field naming the LMTP transaction (RFC 5321 §4.4), CRLF-terminated: all a
/// relayed copy gets, since the next hop adds Return-Path and Delivered-To itself.
std::string received_field(const lmtp::envelope& env, const lmtp::address& recipient,
                           const transaction_info& info, std::chrono::system_clock::time_point now);

/// The trace header fields prepended to one recipient's Maildir copy: Return-Path, Delivered-To
/// and the Received: field. CRLF line ends, like the message they precede (the store turns
/// both into LF).
std::string trace_headers(const lmtp::envelope& env, const lmtp::address& recipient,
                          const transaction_info& info, std::chrono::system_clock::time_point now);

class transaction {
public:
    /// `recipients` are the envelope's, in RCPT order, as verification normalised them; files
    /// (or next-hop transactions) are created when each copy is decided. `hop` is the next hop
    /// when cfg.store.kind is lmtp; it must outlive the transaction.
    transaction(const config::config& cfg, store::name_generator& names, lmtp::envelope env,
                std::vector<recipient::recipient> recipients, transaction_info info,
                relay::next_hop* hop = nullptr);
    ~transaction();
    transaction(transaction&&) noexcept;
    transaction& operator=(transaction&&) = delete;
    transaction(const transaction&) = delete;
    transaction& operator=(const transaction&) = delete;

    /// Key discovery's answer for recipient `index` (RCPT order). May decide and start its copy.
    void provide_keys(std::size_t index, seal::key_set keys);
    /// Appends body bytes (as received, dot-unstuffed).
    void write(std::string_view bytes);
    /// Body is held beyond held_body_limit for recipients without keys: provide them before
    /// writing more.
    bool needs_keys() const;
    bool has_keys(std::size_t index) const;
    /// The whole message was written; call after every recipient's keys were provided. Decides
    /// every remaining copy and completes the sealed ones.
    void end_of_data();
    /// Completes recipient `index`: commits its file and returns its reply. Logs the delivery
    /// line.
    lmtp::reply finish(std::size_t index);
    /// Drops every uncommitted delivery (client gone, limit crossed, shutdown), logging each
    /// with `reason`.
    void abandon(std::string_view reason);

    std::size_t recipients() const;

    struct state;

private:
    std::unique_ptr<state> state_;
};

} // namespace mailseal::delivery
