// SPDX-License-Identifier: Apache-2.0
#include "discovery_session.hpp"

#include <ostream>
#include <sysexits.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <mailseal/dns/resolver.hpp>
#include <mailseal/seal/formats.hpp>

namespace mailseal::tools {

int run_discovery(
    const config::config& cfg, std::ostream& err,
    const std::function<boost::asio::awaitable<void>(discovery::key_discovery&)>& body) {
    return run_discovery_and_dns(
        cfg, err,
        [&](discovery::key_discovery& discovery, dns::resolver&) { return body(discovery); });
}

int run_discovery_and_dns(
    const config::config& cfg, std::ostream& err,
    const std::function<boost::asio::awaitable<void>(discovery::key_discovery&, dns::resolver&)>&
        body) {
    boost::asio::io_context io(1);
    auto made = dns::resolver::create(io.get_executor(), cfg.dns);
    if (auto* problem = std::get_if<std::string>(&made)) {
        err << "mailseal: dns: " << *problem << "\n";
        return EX_CONFIG;
    }
    auto& resolver = *std::get<std::unique_ptr<dns::resolver>>(made);
    auto formats = seal::format_set::load(cfg);
    if (auto* problem = std::get_if<std::string>(&formats)) {
        err << "mailseal: " << *problem << "\n";
        return EX_CONFIG;
    }
    // A one-shot command: blocking work (the local store) may run on this same thread.
    discovery::key_discovery discovery(
        cfg, resolver, std::move(std::get<seal::format_set>(formats)), io.get_executor());
    std::exception_ptr crashed;
    boost::asio::co_spawn(io, body(discovery, resolver),
                          [&](std::exception_ptr e) { crashed = e; });
    io.run();
    if (crashed) {
        std::rethrow_exception(crashed);
    }
    return EX_OK;
}

} // namespace mailseal::tools
