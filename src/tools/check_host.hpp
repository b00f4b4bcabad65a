// SPDX-License-Identifier: Apache-2.0
#pragma once

// `check --tlsa` and `check --host`: the DNS this host's mail service depends on, judged by
// the monitor component with the chains the server presents.

#include <chrono>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange
#include <vector>

#include <boost/asio/awaitable.hpp>

#include <mailseal/dns/resolver.hpp>
#include <mailseal/monitor/seen.hpp>
#include <mailseal/monitor/tlsa.hpp>
#include <mailseal/tools/tools.hpp>

namespace mailseal::tools {

struct host_check_context {
    const config::config& cfg;
    const check_options& options;
    /// The real time (first sightings are recorded at it) and the time judged at.
    std::chrono::system_clock::time_point now;
    std::chrono::system_clock::time_point at;
    monitor::seen_records seen;
};

/// The TLSA RRset of `host` (as given: a U-label or A-label name) against the chains in use.
boost::asio::awaitable<monitor::tlsa_judgement>
check_tlsa_host(host_check_context& context, dns::resolver& resolver, std::string host);

/// Every local domain's MX RRset, then the TLSA RRset of each host they name: those that are
/// this host (server.hostname, a name its certificate bears, or a name resolving to one of its
/// addresses) against the chains in use, the others (unless probed) for their DNS alone.
boost::asio::awaitable<std::vector<monitor::verdict>> check_this_host(host_check_context& context,
                                                                      dns::resolver& resolver);

} // namespace mailseal::tools
