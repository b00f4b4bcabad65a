// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The network side: listeners, one C++20 coroutine per connection, deadlines, and the worker
/// pool that runs blocking delivery work.
///
/// A connection's coroutine only moves bytes and time: it feeds what it reads to an
/// lmtp::session, writes the replies the session emits, arms the deadline the session's phase
/// calls for, and hands delivery actions to a delivery::transaction on the worker pool, so a
/// slow disk or a large message's encryption never stalls the event loop (greetings, other
/// sessions). Each accepted recipient's key lookup starts at RCPT and is awaited only when its
/// copy must be decided, at the latest after the final dot.
///
/// Failure policy: a failing connection (reset, timeout, client gone mid-DATA) ends only that
/// connection; its uncommitted deliveries are abandoned, so nothing partial reaches new/. An
/// exception escaping a connection's coroutine is logged and ends that connection.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include <boost/asio/io_context.hpp>

#include <mailseal/config/config.hpp>
#include <mailseal/dns/resolver.hpp>
#include <mailseal/seal/formats.hpp>

namespace mailseal::server {

class server {
public:
    /// Binds every configured listener (unix sockets get their mode and owner). Returns an
    /// error message naming the listener on failure. Key lookups go through `resolver`, and
    /// keys are judged by `formats`.
    static std::variant<std::unique_ptr<server>, std::string>
    bind(boost::asio::io_context& io, config::config cfg, std::unique_ptr<dns::resolver> resolver,
         seal::format_set formats);

    /// Applies a new configuration (SIGHUP) without dropping anything: connections open now
    /// finish with the configuration they started with, new ones get the new one. Settings
    /// fixed at start (listeners, metrics.listen, server.user, server.group, server.workers)
    /// must be unchanged; otherwise nothing changes and the error names the setting.
    std::optional<std::string> reload(config::config cfg, std::unique_ptr<dns::resolver> resolver,
                                      seal::format_set formats);

    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Starts accepting; logs `event=listening` per listener.
    void start();
    /// Stops accepting; connections waiting for a command before DATA get 421 4.3.2 and close,
    /// a message being received or delivered is finished first. run() on the io_context
    /// returns once all have closed.
    void stop();

    std::size_t open_connections() const;

    /// Shared by the listeners and connection coroutines; defined in server.cpp.
    struct state;

private:
    explicit server(std::unique_ptr<state> s);
    std::shared_ptr<state> state_;
};

} // namespace mailseal::server
