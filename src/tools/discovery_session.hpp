#pragma once

// What `lookup` and `check` share: a validating resolver, the key policy and key discovery
// made from the configuration, and an event loop to run lookups on.

#include <functional>
#include <iosfwd>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange

#include <boost/asio/awaitable.hpp>

#include <mailseal/config/config.hpp>
#include <mailseal/discovery/discovery.hpp>

namespace mailseal::tools {

/// Runs `body` with a key_discovery built from `cfg` until it returns. Returns 0, or EX_CONFIG
/// after printing why the resolver or the key policy cannot be made (e.g. no trust anchor).
int run_discovery(
    const config::config& cfg, std::ostream& err,
    const std::function<boost::asio::awaitable<void>(discovery::key_discovery&)>& body);

} // namespace mailseal::tools
