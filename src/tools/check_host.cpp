#include "check_host.hpp"

#include <algorithm>
#include <arpa/inet.h>

#include <mailseal/dns/lookup.hpp>
#include <mailseal/dns/name.hpp>
#include <mailseal/seal/smime/evaluate.hpp>

namespace mailseal::tools {
namespace {

constexpr std::uint16_t a_rr_type = 1;
constexpr std::uint16_t mx_rr_type = 15;
constexpr std::uint16_t aaaa_rr_type = 28;
constexpr auto probe_timeout = std::chrono::seconds(30);

/// The chains `host` presents: the --cert file, a STARTTLS probe of each of its addresses, or
/// Postfix's own. An error names what could not be read.
boost::asio::awaitable<std::variant<std::vector<monitor::served_chain>, std::string>>
chains_in_use(host_check_context& context, dns::resolver& resolver, const std::string& host,
              bool probe) {
    using result = std::variant<std::vector<monitor::served_chain>, std::string>;
    const auto& options = context.options;
    if (options.cert) {
        co_return monitor::read_chains(*options.cert);
    }
    if (!probe) {
        co_return monitor::postfix_chains(options.postfix_config, options.port);
    }
    std::vector<std::string> addresses;
    std::string problems;
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
    if (addresses.empty()) {
        co_return result(std::in_place_index<1>,
                         "no address to probe for " + host +
                             (problems.empty() ? "" : " (" + problems + ")"));
    }
    std::vector<monitor::served_chain> chains;
    for (const auto& address : addresses) {
        // Blocking, like the rest of a one-shot check; bounded by the timeout per step.
        auto got =
            monitor::probe(host, address, options.port, context.cfg.server.hostname, probe_timeout);
        if (auto* why = std::get_if<std::string>(&got)) {
            co_return result(std::in_place_index<1>, "probe " + *why);
        }
        chains.push_back(std::move(std::get<monitor::served_chain>(got)));
    }
    co_return chains;
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

/// Judges one host's TLSA RRset with `chains` (empty: its DNS alone), recording first
/// sightings.
boost::asio::awaitable<monitor::tlsa_judgement>
judge_host(host_check_context& context, dns::resolver& resolver, const std::string& host,
           std::vector<monitor::served_chain> chains, std::vector<std::string> mx_domains) {
    const auto& options = context.options;
    monitor::tlsa_inputs in;
    in.host = host;
    in.port = options.port;
    in.lookup =
        co_await resolver.lookup(monitor::tlsa_owner(host, options.port), monitor::tlsa_rr_type);
    in.current = std::move(chains);
    in.mx_domains = std::move(mx_domains);
    in.at = context.at;
    in.warn_days = options.warn_days;
    if (options.next) {
        auto next = monitor::read_chains(*options.next);
        if (auto* why = std::get_if<std::string>(&next)) {
            monitor::tlsa_judgement failed;
            failed.result.kind = "tlsa";
            failed.result.name = monitor::tlsa_owner(host, options.port);
            failed.result.raise(monitor::unknown, "cannot read the next certificate: " + *why);
            failed.next.gate = monitor::unknown;
            failed.next.why = *why;
            co_return failed;
        }
        in.next = std::get<std::vector<monitor::served_chain>>(next).front();
    }
    if (in.lookup.result == dns::outcome::secure_records) {
        std::vector<std::string> presentations;
        for (const auto& rdata : in.lookup.rdata) {
            auto record = seal::smime::parse_smimea_rdata(rdata);
            presentations.push_back(record ? seal::smime::to_presentation(*record)
                                           : dns::generic_rdata(rdata));
        }
        in.first_seen = context.seen.observe(in.lookup.owner, presentations, context.now);
    } else if (in.lookup.result == dns::outcome::secure_absent) {
        context.seen.observe(in.lookup.owner, {}, context.now);
    }
    co_return monitor::judge_tlsa(in);
}

} // namespace

boost::asio::awaitable<monitor::tlsa_judgement>
check_tlsa_host(host_check_context& context, dns::resolver& resolver, std::string host) {
    auto a_label = dns::to_a_label(host);
    if (!a_label) {
        monitor::tlsa_judgement failed;
        failed.result.kind = "tlsa";
        failed.result.name = host;
        failed.result.raise(monitor::unknown, "not a host name");
        failed.next.gate = monitor::unknown;
        failed.next.why = "not a host name";
        co_return failed;
    }
    std::vector<std::string> mx_domains;
    for (const auto& domain : local_domains(context.cfg)) {
        auto mx = co_await look_up_mx(resolver, domain);
        if (std::find(mx.hosts.begin(), mx.hosts.end(), *a_label) != mx.hosts.end()) {
            mx_domains.push_back(domain);
        }
    }
    auto chains = co_await chains_in_use(context, resolver, *a_label, context.options.probe);
    if (auto* why = std::get_if<std::string>(&chains)) {
        monitor::tlsa_judgement failed;
        failed.result.kind = "tlsa";
        failed.result.name = monitor::tlsa_owner(*a_label, context.options.port);
        failed.result.raise(monitor::unknown, "cannot get the certificate in use: " + *why);
        failed.next.gate = monitor::unknown;
        failed.next.why = *why;
        co_return failed;
    }
    co_return co_await judge_host(context, resolver, *a_label, std::move(std::get<0>(chains)),
                                  std::move(mx_domains));
}

boost::asio::awaitable<std::vector<monitor::verdict>> check_this_host(host_check_context& context,
                                                                      dns::resolver& resolver) {
    std::vector<monitor::verdict> verdicts;
    // Host -> the local domains whose MX names it, in the order first met.
    std::vector<std::pair<std::string, std::vector<std::string>>> hosts;
    for (const auto& domain : local_domains(context.cfg)) {
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
    for (auto& [host, domains] : hosts) {
        bool ours = host == own_name;
        std::vector<monitor::served_chain> chains;
        if (ours || context.options.probe) {
            auto found =
                co_await chains_in_use(context, resolver, host, !ours || context.options.probe);
            if (auto* why = std::get_if<std::string>(&found)) {
                monitor::verdict failed;
                failed.kind = "tlsa";
                failed.name = monitor::tlsa_owner(host, context.options.port);
                failed.raise(monitor::unknown, "cannot get the certificate in use: " + *why);
                verdicts.push_back(std::move(failed));
                continue;
            }
            chains = std::move(std::get<0>(found));
        }
        auto judged = co_await judge_host(context, resolver, host, std::move(chains), domains);
        if (!ours && !context.options.probe) {
            judged.result.note("another host than server.hostname (" + own_name +
                               "): its certificate is not checked here (--probe does)");
        }
        verdicts.push_back(std::move(judged.result));
    }
    co_return verdicts;
}

} // namespace mailseal::tools
