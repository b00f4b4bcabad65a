// SPDX-License-Identifier: Apache-2.0
#pragma once

// What `lookup` and `check` share: a validating resolver, the key policy and key discovery
// made from the configuration, and an event loop to run lookups on.

#include <functional>
#include <iosfwd>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange

#include <boost/asio/awaitable.hpp>

#include <mailseal/config/config.hpp>
#include <mailseal/discovery/discovery.hpp>
#include <mailseal/dns/resolver.hpp>

namespace mailseal::tools {

/// Runs `body` with a key_discovery built from `cfg` until it returns. Returns 0, or EX_CONFIG
/// after printing why the resolver or the key policy cannot be made (e.g. no trust anchor).
int run_discovery(
    const config::config& cfg, std::ostream& err,
    const std::function<boost::asio::awaitable<void>(discovery::key_discovery&)>& body);

/// The same, for a body that also makes lookups of its own through the resolver.
int run_discovery_and_dns(
    const config::config& cfg, std::ostream& err,
    const std::function<boost::asio::awaitable<void>(discovery::key_discovery&, dns::resolver&)>&
        body);

} // namespace mailseal::tools
