// SPDX-License-Identifier: Apache-2.0
#include "check_host.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <memory>
#include <netinet/in.h>
#include <set>

#include <openssl/x509v3.h>

#include <mailseal/dns/lookup.hpp>
#include <mailseal/dns/name.hpp>

namespace mailseal::tools {
namespace {

constexpr std::uint16_t a_rr_type = 1;
constexpr std::uint16_t mx_rr_type = 15;
constexpr std::uint16_t aaaa_rr_type = 28;
constexpr auto probe_timeout = std::chrono::seconds(30);

/// Chains found, and addresses that could not be probed (when others could).
struct chains_found {
    std::vector<monitor::served_chain> chains;
    std::vector<std::string> problems;
};
using chains_or_error = std::variant<chains_found, std::string>;

/// The host's addresses as text, from its A and AAAA records; lookup problems in `problems`.
boost::asio::awaitable<std::vector<std::string>>
addresses_of(dns::resolver& resolver, const std::string& host, std::string& problems) {
    std::vector<std::string> addresses;
    for (auto type : {a_rr_type, aaaa_rr_type}) {
        auto found = co_await resolver.lookup(host, type);
        if (found.result == dns::outcome::bogus || found.result == dns::outcome::failure) {
            problems += (problems.empty() ? "" : "; ") +
                        std::string(type == a_rr_type ? "A" : "AAAA") + " lookup " +
                        std::string(dns::to_string(found.result)) +
                        (found.detail.empty() ? "" : ": " + found.detail);
            continue;
        }
        for (const auto& rdata : found.rdata) {
            char text[INET6_ADDRSTRLEN] = {};
            int family = rdata.size() == 4 ? AF_INET : AF_INET6;
            if ((rdata.size() == 4 || rdata.size() == 16) &&
                ::inet_ntop(family, rdata.data(), text, sizeof text) != nullptr) {
                addresses.emplace_back(text);
            }
        }
    }
    co_return addresses;
}

/// This machine's interface addresses, as text.
std::set<std::string> local_addresses() {
    std::set<std::string> found;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) {
        return found;
    }
    std::unique_ptr<ifaddrs, decltype(&::freeifaddrs)> owner(list, &::freeifaddrs);
    for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr) {
            continue;
        }
        char text[INET6_ADDRSTRLEN] = {};
        const void* raw = nullptr;
        if (i->ifa_addr->sa_family == AF_INET) {
            raw = &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr;
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            raw = &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr;
        }
        if (raw != nullptr && ::inet_ntop(i->ifa_addr->sa_family, raw, text, sizeof text)) {
            found.insert(text);
        }
    }
    return found;
}

/// The chains a STARTTLS handshake with each of the host's addresses presents. A server with
/// an RSA and an ECDSA certificate shows one per handshake: a second handshake offering only
/// the other kind of signature finds the other.
boost::asio::awaitable<chains_or_error>
probe_host(host_check_context& context, dns::resolver& resolver, const std::string& host) {
    std::string lookup_problems;
    auto addresses = co_await addresses_of(resolver, host, lookup_problems);
    if (addresses.empty()) {
        co_return chains_or_error(
            std::in_place_index<1>,
            "no address to probe for " + host +
                (lookup_problems.empty() ? "" : " (" + lookup_problems + ")"));
    }
    chains_found found;
    for (const auto& address : addresses) {
        // Blocking, like the rest of a one-shot check; bounded by the timeout.
        auto got = monitor::probe(host, address, context.options.port, context.cfg.server.hostname,
                                  probe_timeout, monitor::signature_kind::any);
        if (auto* why = std::get_if<std::string>(&got)) {
            found.problems.push_back("probe " + *why);
            continue;
        }
        auto& chain = std::get<monitor::served_chain>(got);
        int key_type = EVP_PKEY_get_base_id(X509_get0_pubkey(chain.certificates.front().get()));
        auto other = key_type == EVP_PKEY_RSA || key_type == EVP_PKEY_RSA_PSS
                         ? monitor::signature_kind::ecdsa
                         : monitor::signature_kind::rsa;
        auto leaf = chain.certificates.front();
        found.chains.push_back(std::move(chain));
        auto second = monitor::probe(host, address, context.options.port,
                                     context.cfg.server.hostname, probe_timeout, other);
        // A server with one certificate refuses the other kind (or presents the same one):
        // nothing more to see.
        if (auto* more = std::get_if<monitor::served_chain>(&second);
            more != nullptr && X509_cmp(more->certificates.front().get(), leaf.get()) != 0) {
            found.chains.push_back(std::move(*more));
        }
    }
    if (found.chains.empty()) {
        std::string all;
        for (const auto& p : found.problems) {
            all += (all.empty() ? "" : "; ") + p;
        }
        co_return chains_or_error(std::in_place_index<1>, all);
    }
    co_return found;
}

/// The chains in use on this host: the --cert file, or Postfix's own.
chains_or_error local_chains(const check_options& options) {
    auto read = options.cert ? monitor::read_chains(*options.cert)
                             : monitor::postfix_chains(options.postfix_config, options.port);
    if (auto* why = std::get_if<std::string>(&read)) {
        return chains_or_error(std::in_place_index<1>, *why);
    }
    return chains_found{std::move(std::get<0>(read)), {}};
}

/// The MX hosts of a domain, and its MX verdict.
struct domain_mx {
    monitor::verdict result;
    std::vector<std::string> hosts;
};

boost::asio::awaitable<domain_mx> look_up_mx(dns::resolver& resolver, const std::string& domain) {
    domain_mx out;
    out.result.kind = "mx";
    out.result.name = domain;
    auto found = co_await resolver.lookup(domain, mx_rr_type);
    auto& v = out.result;
    v.summary = "MX " + std::string(dns::to_string(found.result));
    switch (found.result) {
    case dns::outcome::bogus:
        v.raise(monitor::critical,
                "MX RRset bogus (" + found.detail + "): senders cannot deliver to this domain");
        co_return out;
    case dns::outcome::failure:
        v.raise(monitor::unknown, "MX lookup failed: " + found.detail);
        co_return out;
    case dns::outcome::insecure:
        v.raise(monitor::critical, "the MX RRset is not DNSSEC-signed: senders do not use DANE "
                                   "for this domain (RFC 7672 §2.2.1); sign the zone");
        co_return out;
    case dns::outcome::secure_absent:
        // RFC 5321 §5.1: without MX records the domain itself is the mail host.
        v.note("no MX records: the domain's own address records receive its mail");
        out.hosts.push_back(domain);
        co_return out;
    case dns::outcome::secure_records:
        break;
    }
    for (const auto& rdata : found.rdata) {
        auto mx = dns::parse_mx(rdata);
        if (!mx) {
            v.raise(monitor::warning, "an MX record does not parse");
        } else if (mx->exchange.empty()) {
            v.note("a null MX (RFC 7505): the domain receives no mail");
        } else if (std::find(out.hosts.begin(), out.hosts.end(), mx->exchange) == out.hosts.end()) {
            out.hosts.push_back(mx->exchange);
        }
    }
    std::string names;
    for (const auto& h : out.hosts) {
        names += (names.empty() ? " " : ", ") + h;
    }
    v.summary += names;
    co_return out;
}

std::vector<std::string> local_domains(const config::config& cfg) {
    std::vector<std::string> domains;
    for (const auto& d : cfg.local_domains) {
        auto a_label = dns::to_a_label(d);
        if (a_label && std::find(domains.begin(), domains.end(), *a_label) == domains.end()) {
            domains.push_back(*a_label);
        }
    }
    return domains;
}

monitor::tlsa_judgement unknown_tlsa(const std::string& name, const std::string& why) {
    monitor::tlsa_judgement failed;
    failed.result.kind = "tlsa";
    failed.result.name = name;
    failed.result.raise(monitor::unknown, why);
    failed.next.gate = monitor::unknown;
    failed.next.why = why;
    return failed;
}

/// Judges one host's TLSA RRset with `chains` (none: its DNS alone) and `next`, recording
/// first sightings.
boost::asio::awaitable<monitor::tlsa_judgement>
judge_host(host_check_context& context, dns::resolver& resolver, const std::string& host,
           chains_found chains, std::vector<monitor::served_chain> next,
           std::vector<std::string> mx_domains) {
    const auto& options = context.options;
    monitor::tlsa_inputs in;
    in.host = host;
    in.port = options.port;
    in.lookup =
        co_await resolver.lookup(monitor::tlsa_owner(host, options.port), monitor::tlsa_rr_type);
    in.current = std::move(chains.chains);
    in.next = std::move(next);
    in.mx_domains = std::move(mx_domains);
    in.at = context.at;
    in.warn_days = options.warn_days;
    if (in.lookup.result == dns::outcome::secure_records) {
        std::vector<std::string> presentations;
        for (const auto& rdata : in.lookup.rdata) {
            presentations.push_back(monitor::tlsa_presentation(rdata));
        }
        in.first_seen = context.seen.observe(in.lookup.owner, presentations, context.now);
    } else if (in.lookup.result == dns::outcome::secure_absent) {
        context.seen.observe(in.lookup.owner, {}, context.now);
    }
    auto judged = monitor::judge_tlsa(in);
    for (const auto& problem : chains.problems) {
        // An address that could not be probed leaves its server unchecked.
        judged.result.raise(monitor::warning, problem);
    }
    co_return judged;
}

/// The --next file's chains; an error names the file.
std::variant<std::vector<monitor::served_chain>, std::string> next_chains(const check_options& o) {
    if (!o.next) {
        return std::vector<monitor::served_chain>{};
    }
    auto read = monitor::read_chains(*o.next);
    if (auto* why = std::get_if<std::string>(&read)) {
        return "cannot read the next certificate: " + *why;
    }
    return std::get<0>(read);
}

} // namespace

boost::asio::awaitable<monitor::tlsa_judgement>
check_tlsa_host(host_check_context& context, dns::resolver& resolver, std::string host) {
    auto a_label = dns::to_a_label(host);
    if (!a_label) {
        co_return unknown_tlsa(host, "not a host name");
    }
    auto owner = monitor::tlsa_owner(*a_label, context.options.port);
    std::vector<std::string> mx_domains;
    for (const auto& domain : local_domains(context.cfg)) {
        auto mx = co_await look_up_mx(resolver, domain);
        if (std::find(mx.hosts.begin(), mx.hosts.end(), *a_label) != mx.hosts.end()) {
            mx_domains.push_back(domain);
        }
    }
    // Not a conditional expression: GCC 12 miscompiles co_await inside one.
    chains_or_error chains;
    if (context.options.probe) {
        chains = co_await probe_host(context, resolver, *a_label);
    } else {
        chains = local_chains(context.options);
    }
    if (auto* why = std::get_if<std::string>(&chains)) {
        co_return unknown_tlsa(owner, "cannot get the certificate in use: " + *why);
    }
    auto next = next_chains(context.options);
    if (auto* why = std::get_if<std::string>(&next)) {
        co_return unknown_tlsa(owner, *why);
    }
    co_return co_await judge_host(context, resolver, *a_label, std::move(std::get<0>(chains)),
                                  std::move(std::get<0>(next)), std::move(mx_domains));
}

boost::asio::awaitable<std::vector<monitor::verdict>> check_this_host(host_check_context& context,
                                                                      dns::resolver& resolver) {
    const auto& options = context.options;
    std::vector<monitor::verdict> verdicts;
    auto domains_here = local_domains(context.cfg);
    if (domains_here.empty()) {
        // An unconfigured host (the package's file leaves mailbox.domains to the operator)
        // has nothing to check, which is not the same as all well.
        monitor::verdict none;
        none.kind = "mx";
        none.name = "mailbox.domains";
        none.raise(monitor::unknown, "no local domains are configured: set mailbox.domains");
        verdicts.push_back(std::move(none));
        co_return verdicts;
    }
    // Host -> the local domains whose MX names it, in the order first met.
    std::vector<std::pair<std::string, std::vector<std::string>>> hosts;
    for (const auto& domain : domains_here) {
        auto mx = co_await look_up_mx(resolver, domain);
        verdicts.push_back(std::move(mx.result));
        for (const auto& host : mx.hosts) {
            auto it = std::find_if(hosts.begin(), hosts.end(),
                                   [&](const auto& h) { return h.first == host; });
            if (it == hosts.end()) {
                hosts.push_back({host, {domain}});
            } else {
                it->second.push_back(domain);
            }
        }
    }
    auto own_name = dns::to_a_label(context.cfg.server.hostname).value_or("");
    auto own_addresses = local_addresses();
    bool next_used = false;
    std::optional<chains_or_error> own_chains;
    if (!options.probe) {
        own_chains = local_chains(options);
    }
    for (auto& [host, domains] : hosts) {
        auto owner = monitor::tlsa_owner(host, options.port);
        // This host's MX name: server.hostname, a name its certificate bears, or a name whose
        // addresses are this machine's.
        bool ours = host == own_name;
        if (!ours && own_chains && own_chains->index() == 0) {
            for (const auto& chain : std::get<0>(*own_chains).chains) {
                // Exact names only: a wildcard would make every sibling MX "this host".
                ours = ours ||
                       X509_check_host(chain.certificates.front().get(), host.c_str(), host.size(),
                                       X509_CHECK_FLAG_NO_WILDCARDS |
                                           X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
                                       nullptr) == 1;
            }
        }
        if (!ours) {
            std::string ignored;
            auto addresses = co_await addresses_of(resolver, host, ignored);
            for (const auto& address : addresses) {
                ours = ours || own_addresses.count(address) > 0;
            }
        }
        chains_found chains;
        if (options.probe) {
            auto probed = co_await probe_host(context, resolver, host);
            if (auto* why = std::get_if<std::string>(&probed)) {
                verdicts.push_back(
                    unknown_tlsa(owner, "cannot get the certificate in use: " + *why).result);
                continue;
            }
            chains = std::move(std::get<0>(probed));
        } else if (ours) {
            if (auto* why = std::get_if<std::string>(&*own_chains)) {
                verdicts.push_back(
                    unknown_tlsa(owner, "cannot get the certificate in use: " + *why).result);
                continue;
            }
            chains = std::get<0>(*own_chains);
        }
        // The staged certificate is this host's: other MX hosts roll their own keys.
        std::vector<monitor::served_chain> next;
        if (ours) {
            next_used = true;
            auto read = next_chains(options);
            if (auto* why = std::get_if<std::string>(&read)) {
                verdicts.push_back(unknown_tlsa(owner, *why).result);
                continue;
            }
            next = std::move(std::get<0>(read));
        }
        auto judged = co_await judge_host(context, resolver, host, std::move(chains),
                                          std::move(next), domains);
        if (!ours && !options.probe) {
            judged.result.note("not this host (not server.hostname, not named in its "
                               "certificate, not one of its addresses): its certificate is not "
                               "checked here (--probe does)");
        }
        verdicts.push_back(std::move(judged.result));
    }
    if (options.next && !next_used && !verdicts.empty()) {
        verdicts.back().note("--next applies to this host's MX name, and no MX host is this "
                             "host: it was not used");
    }
    co_return verdicts;
}

} // namespace mailseal::tools
