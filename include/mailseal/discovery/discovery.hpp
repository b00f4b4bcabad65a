#pragma once

/// Key discovery for one recipient: which public keys its mail is sealed to.
///
/// The recipient's base local part (address extension dropped) and A-label domain give the
/// SMIMEA owner name (RFC 8162 §3); the DNSSEC-validated answer and the local certificate
/// store then go through the precedence of keys::select_keys():
///
/// | lookup                      | keys from                                              |
/// |-----------------------------|--------------------------------------------------------|
/// | secure, usable records      | the records                                            |
/// | secure, hash-only records   | local certificates the records' digests confirm        |
/// | secure absence, insecure    | the local store                                        |
/// | bogus, failure              | none, ever: the caller answers 4xx (never plaintext)    |
///
/// With `dns.lowercase_retry`, a secure absence for a local part with capitals is looked up
/// once more in lowercase (policy: RFC 8162 hashes the exact octets).
///
/// Failure policy: find() never throws for DNS, store or certificate problems; every one ends
/// in the result's lookup outcome and reports.

#include <string>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <mailseal/config/config.hpp>
#include <mailseal/dns/resolver.hpp>
#include <mailseal/keys/evaluate.hpp>
#include <mailseal/lmtp/address.hpp>

namespace mailseal::discovery {

struct recipient_keys {
    /// The address looked up: base local part @ A-label domain.
    std::string address;
    /// The lookup that decided (the lowercase retry's, when it ran).
    dns::lookup_result lookup;
    bool lowercase_retry_used = false;
    /// Usable keys (empty unless sealing may use them), one report per candidate, the decision.
    keys::evaluation evaluation;
    /// The local store's certificates for the address (none after a bogus or failed lookup,
    /// when the store is not read), and the files it skipped (unreadable, no certificate, ...).
    std::vector<keys::local_certificate> local_certificates;
    std::vector<keys::candidate_report> local_problems;
};

keys::dns_outcome to_keys_outcome(dns::outcome o);

/// The address keys are looked up and certificates checked for: the base local part (address
/// extension dropped, case kept) @ the A-label domain.
std::string key_address(const config::config& cfg, const lmtp::address& recipient);

class key_discovery {
public:
    /// `blocking` runs the local-store read and certificate evaluation (a worker pool in the
    /// daemon, the tool's own io_context in a one-shot command).
    key_discovery(const config::config& cfg, dns::resolver& resolver, keys::policy policy,
                  boost::asio::any_io_executor blocking);

    /// By value: the caller may start a lookup and await it after the address is gone.
    boost::asio::awaitable<recipient_keys> find(lmtp::address recipient);

private:
    const config::config& config_;
    dns::resolver& resolver_;
    keys::policy policy_;
    boost::asio::any_io_executor blocking_;
};

} // namespace mailseal::discovery
