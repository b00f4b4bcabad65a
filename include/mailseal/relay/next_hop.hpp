// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Relaying sealed copies to the next hop's LMTP server ([store] kind = "lmtp"): mailseal as a
/// pre-delivery stage in front of Dovecot, which keeps doing quota, Sieve and indexing.
///
/// Each recipient's copy travels in a transaction of its own (MAIL FROM, one RCPT TO, DATA),
/// so each gets Dovecot's own verdict and no copy is ever addressed to another recipient. The
/// commands are pipelined when the server announces PIPELINING (RFC 2920), and connections
/// are reused: a finished transaction gives its connection back to a pool of idle ones.
///
/// Everything blocks with a deadline per step (connect, each reply, each write): the daemon
/// runs it on its worker pool, like Maildir writes.
///
/// Failure policy: the next hop's own replies (4xx, 5xx, at RCPT, DATA or after the final dot)
/// are passed back unchanged: code, enhanced code and text. A next hop that cannot be reached
/// gives 451 4.4.1, a connection lost or timed out mid-transaction 451 4.4.2, a reply that does
/// not parse 451 4.5.0; all temporary, so the MTA retries. Nothing is answered 250 before the
/// next hop answered 250 for that recipient. An idle connection the server closed meanwhile is
/// noticed before use, or at the first reply, and the transaction is retried once on a new one.

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <mailseal/config/config.hpp>
#include <mailseal/lmtp/reply.hpp>
#include <mailseal/lmtp/session.hpp>
#include <mailseal/relay/reply_parser.hpp>
#include <mailseal/store/maildir.hpp>

namespace mailseal::relay {

/// A reply for the MTA and what happened, for the log.
struct outcome {
    lmtp::reply reply;
    std::string detail;
};

/// One LMTP client connection; blocking, with a deadline per step.
class connection {
public:
    /// Connects, reads the greeting and says LHLO; an error text on failure.
    static std::variant<connection, std::string> open(const config::listener& address,
                                                      std::chrono::seconds timeout,
                                                      const std::string& hostname);

    std::optional<std::string> send(std::string_view bytes);
    /// The next reply within `timeout`, or an error text (timeout, closed, unparseable).
    std::variant<peer_reply, std::string> read_reply(std::chrono::seconds timeout);
    std::variant<peer_reply, std::string> read_reply() { return read_reply(timeout_); }
    /// Fit to carry another transaction: the server has not closed it, and it has sent
    /// nothing beyond the replies read (extra bytes would shift every later reply by one).
    bool reusable() const;

    bool pipelining = false;
    bool eight_bit_mime = false;
    bool smtputf8 = false;
    std::chrono::steady_clock::time_point idle_since;

private:
    connection(util::unique_fd fd, std::chrono::seconds timeout);

    util::unique_fd fd_;
    std::chrono::seconds timeout_;
    reply_parser parser_;
};

class next_hop;

/// One recipient's copy on its way: DATA was accepted (354); bytes are dot-stuffed and sent.
/// Destroyed before finish(), the connection is closed, and the next hop drops the message.
class copy_transfer {
public:
    copy_transfer(copy_transfer&&) noexcept;
    copy_transfer& operator=(copy_transfer&&) noexcept;
    copy_transfer(const copy_transfer&) = delete;
    copy_transfer& operator=(const copy_transfer&) = delete;
    ~copy_transfer();

    /// Appends message bytes (CRLF text). After a failure the transfer is over.
    std::optional<outcome> write(std::string_view bytes);
    /// Ends the data and returns the next hop's verdict on the copy.
    outcome finish();

private:
    friend class next_hop;
    copy_transfer(next_hop& hop, connection conn);
    /// Appends to buffer_ without ever growing it (a reallocation would free plaintext
    /// unwiped): full, it is sent first.
    std::optional<outcome> append(std::string_view bytes);
    std::optional<outcome> flush();
    outcome lost(const std::string& why);

    next_hop* hop_;
    std::optional<connection> connection_;
    /// Dot-stuffed bytes not yet sent; wiped after each send (they may be plaintext).
    std::string buffer_;
    bool at_line_start_ = true;
};

class next_hop {
public:
    /// `timeout` bounds each command's reply and each write, `data_done_timeout` the reply
    /// after the final dot; `hostname` is our LHLO name.
    next_hop(config::listener address, std::chrono::seconds timeout,
             std::chrono::seconds data_done_timeout, std::size_t idle_limit, std::string hostname);
    ~next_hop();
    next_hop(const next_hop&) = delete;
    next_hop& operator=(const next_hop&) = delete;

    /// "unix:/path" or "tcp:host:port", for logs.
    const std::string& name() const { return name_; }

    /// Opens `recipient`'s transaction up to DATA's 354, or returns the reply that ends it.
    std::variant<copy_transfer, outcome> begin(const lmtp::envelope& env,
                                               const lmtp::address& recipient);

private:
    friend class copy_transfer;
    std::optional<connection> take_idle();
    void give_back(connection conn);
    /// A reused connection that failed before DATA was accepted (nothing of the message was
    /// sent): try again on a new one.
    struct stale {
        std::string why;
    };
    std::variant<copy_transfer, outcome, stale> attempt(connection conn, const lmtp::envelope& env,
                                                        const lmtp::address& recipient,
                                                        bool reused);

    config::listener address_;
    std::string name_;
    std::chrono::seconds timeout_;
    std::chrono::seconds data_done_timeout_;
    std::size_t idle_limit_;
    std::string hostname_;
    std::mutex mutex_;
    std::vector<connection> idle_;
};

} // namespace mailseal::relay
