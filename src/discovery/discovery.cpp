#include <mailseal/delivery/mailbox.hpp>
#include <mailseal/discovery/discovery.hpp>
#include <mailseal/dns/smimea.hpp>
#include <mailseal/keys/local_store.hpp>
#include <mailseal/log/log.hpp>
#include <mailseal/metrics/metrics.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/offload.hpp>

namespace mailseal::discovery {

std::string key_address(const config::config& cfg, const lmtp::address& recipient) {
    std::string local(delivery::base_local_part(cfg, recipient.local_part));
    // Certificates name internationalised domains in their A-label form (RFC 5280 §7.5), and
    // the store is keyed the same way, whichever form the address came in.
    auto domain = dns::to_a_label(delivery::recipient_domain(cfg, recipient));
    return local + "@" + domain.value_or(util::ascii_lower(recipient.domain));
}

keys::dns_outcome to_keys_outcome(dns::outcome o) {
    switch (o) {
    case dns::outcome::secure_records:
        return keys::dns_outcome::secure_records;
    case dns::outcome::secure_absent:
        return keys::dns_outcome::secure_absent;
    case dns::outcome::insecure:
        return keys::dns_outcome::insecure;
    case dns::outcome::bogus:
        return keys::dns_outcome::bogus;
    case dns::outcome::failure:
        return keys::dns_outcome::failure;
    }
    return keys::dns_outcome::failure;
}

key_discovery::key_discovery(const config::config& cfg, dns::resolver& resolver,
                             keys::policy policy, boost::asio::any_io_executor blocking)
    : config_(cfg), resolver_(resolver), policy_(std::move(policy)),
      blocking_(std::move(blocking)) {}

boost::asio::awaitable<recipient_keys> key_discovery::find(lmtp::address recipient) {
    std::string local(delivery::base_local_part(config_, recipient.local_part));
    recipient_keys out;
    auto domain = dns::to_a_label(delivery::recipient_domain(config_, recipient));
    auto started = std::chrono::steady_clock::now();
    out.address = key_address(config_, recipient);
    std::string store_domain = out.address.substr(out.address.rfind('@') + 1);
    if (!domain) {
        out.lookup.owner = "(none)";
        out.lookup.result = dns::outcome::failure;
        out.lookup.detail = "domain is not a valid IDNA2008 name";
    } else {
        out.lookup = co_await resolver_.lookup(dns::smimea_owner_name(local, *domain));
        auto lower = util::ascii_lower(local);
        if (config_.dns.lowercase_retry && out.lookup.result == dns::outcome::secure_absent &&
            lower != local) {
            out.lookup = co_await resolver_.lookup(dns::smimea_owner_name(lower, *domain));
            out.lowercase_retry_used = true;
        }
    }

    std::vector<keys::smimea_data> records;
    records.reserve(out.lookup.records.size());
    for (const auto& r : out.lookup.records) {
        records.push_back({r.usage, r.selector, r.matching_type, r.data});
    }
    // The local store is keyed like the mailbox: the user name as the Maildir sees it.
    std::string user = config_.mailbox.lowercase_local_part ? util::ascii_lower(local) : local;
    auto outcome = to_keys_outcome(out.lookup.result);
    auto evaluated = co_await util::run_on(blocking_, [&] {
        auto listing =
            (outcome == keys::dns_outcome::bogus || outcome == keys::dns_outcome::failure)
                ? keys::local_listing{}
                : keys::read_local_store(config_.keys.local_store, user, store_domain);
        auto evaluation = keys::select_keys(outcome, records, listing.certificates, policy_,
                                            out.address, std::chrono::system_clock::now());
        return std::pair{std::move(evaluation), std::move(listing)};
    });
    out.evaluation = std::move(evaluated.first);
    out.local_certificates = std::move(evaluated.second.certificates);
    out.local_problems = std::move(evaluated.second.problems);

    metrics::global().key_lookup(keys::to_string(outcome),
                                 std::chrono::steady_clock::now() - started);
    log::info("key-lookup", {{"rcpt", "<" + out.address + ">"},
                             {"owner", out.lookup.owner},
                             {"dnssec", dns::to_string(out.lookup.result)},
                             {"detail", out.lookup.detail},
                             {"keys", std::to_string(out.evaluation.keys.size())},
                             {"decision", out.evaluation.decision}});
    co_return out;
}

} // namespace mailseal::discovery
