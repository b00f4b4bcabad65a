// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Key record lookups (SMIMEA, OPENPGPKEY) through libunbound, validated with DNSSEC, inside the
/// Asio event loop.
///
/// libunbound resolves on a background thread of its own (ub_ctx_async(ctx, 1): a thread,
/// never a fork, which would copy a threaded server). Answers come back through a socket,
/// ub_fd(), that the io_context watches; ub_process() then runs the callbacks on the event
/// loop's thread, and each callback completes the lookup that waits for it. There is no thread
/// per query and no blocking call on the loop.
///
/// Failure policy: a lookup never throws for DNS problems; every lookup ends in exactly one
/// outcome. Only a `secure` answer (records or authenticated absence) may decide anything: a
/// `bogus` or `failure` outcome must turn into a temporary failure (4xx) for the recipient,
/// never into a fallback to the local store or to plaintext (RFC 6698 §4.1, DANE's rules, which
/// RFC 8162 and RFC 7929 inherit). create() refuses a configuration whose trust anchors do not
/// load, because without them every answer is `insecure` and nothing would ever be sealed.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange
#include <variant>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <mailseal/config/config.hpp>
#include <mailseal/dns/lookup.hpp>

namespace mailseal::dns {

/// The process's validating resolver: one per process, used on the thread that runs the
/// io_context of its executor (mailseal runs one).
class resolver {
public:
    /// Sets up libunbound from the configuration: trust anchors, forwarders, stub zones,
    /// unbound.conf, then makes libunbound load all of it, so that every configuration error
    /// shows here rather than at the first lookup. Returns an error text naming the setting
    /// when the trust anchor file cannot be read or holds no DS or DNSKEY record and no extra
    /// anchor is configured, when an anchor does not parse, when libunbound refuses a
    /// forwarder, stub zone or option, or when unbound.conf does not load or leaves out the
    /// validator module. Stub zones at or below special-use names (test., invalid., ...) are
    /// made transparent local zones, since unbound would otherwise answer them itself.
    static std::variant<std::unique_ptr<resolver>, std::string>
    create(boost::asio::any_io_executor ex, const config::dns_settings& settings);

    /// Looks up the records of `rr_type` (class IN) at `owner`, within the configured timeout.
    /// Many lookups may run at once. Cancelling the awaiting coroutine (per-operation
    /// cancellation) ends the lookup as failure "cancelled". A secure or insecure answer is
    /// given again, without asking libunbound, until its TTL runs out; a bogus answer or a
    /// failure never is.
    boost::asio::awaitable<lookup_result> lookup(std::string owner, std::uint16_t rr_type);

    /// For shutdown: every pending lookup completes at once as failure "cancelled". Lookups
    /// started afterwards run normally.
    void cancel_all();

    /// Cancels pending lookups first: ub_ctx_delete() would drop them without a callback.
    ~resolver();
    resolver(const resolver&) = delete;
    resolver& operator=(const resolver&) = delete;

    /// The libunbound context and the lookups waiting on it; shared with the coroutine that
    /// watches ub_fd(), so the context outlives it. Defined in resolver.cpp.
    struct core;

private:
    explicit resolver(std::shared_ptr<core> c);
    std::shared_ptr<core> core_;
};

} // namespace mailseal::dns
