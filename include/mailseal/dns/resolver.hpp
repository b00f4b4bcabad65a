#pragma once

/// SMIMEA lookups through libunbound, validated with DNSSEC, inside the Asio event loop.
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
/// RFC 8162 inherits). create() refuses a configuration whose trust anchors do not load,
/// because without them every answer is `insecure` and nothing would ever be sealed.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange
#include <variant>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <mailseal/config/config.hpp>
#include <mailseal/dns/smimea.hpp>

namespace mailseal::dns {

/// How a lookup ended, from libunbound's result (see classify in resolver.cpp).
enum class outcome {
    secure_records, ///< DNSSEC-secure answer with records
    secure_absent,  ///< DNSSEC-secure NXDOMAIN or NODATA: the user publishes no SMIMEA
    insecure,       ///< unsigned zone (or no chain of trust to it): same as no record
    bogus,          ///< DNSSEC validation failed: never fall back
    failure,        ///< SERVFAIL, timeout, network or library error, cancellation: retry later
};

/// "secure", "secure-absent", "insecure", "bogus", "failure": the words logs and tools use.
std::string_view to_string(outcome);

/// The result of one lookup.
struct lookup_result {
    outcome result = outcome::failure;
    /// The name that was queried.
    std::string owner;
    /// The records, for secure_records only. RRs too short to parse are left out and counted.
    std::vector<smimea_record> records;
    std::size_t unparsable = 0;
    /// The answer was NXDOMAIN (rather than NODATA); meaningful for secure_absent.
    bool nxdomain = false;
    /// Why: unbound's why_bogus text for bogus; the rcode name, ub_strerror() text, "timeout"
    /// or "cancelled" for failure; empty otherwise.
    std::string detail;
};

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

    /// Looks up the SMIMEA records (type 53, class IN) at `owner`, within the configured
    /// timeout. Many lookups may run at once. Cancelling the awaiting coroutine (per-operation
    /// cancellation) ends the lookup as failure "cancelled".
    boost::asio::awaitable<lookup_result> lookup(std::string owner);

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
