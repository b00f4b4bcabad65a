// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Key discovery for one recipient: which public keys, of which format, its mail is sealed to.
///
/// For each format of the recipient's policy (seal.formats), the recipient's base local part
/// and A-label domain give the owner name of the format's record (RFC 8162 §3 for SMIMEA, RFC
/// 7929 §3 for OPENPGPKEY); the lookups run in parallel, each validated with DNSSEC. Each
/// format then judges its records and the user's files in the local key store:
///
/// | lookup                      | keys from                                              |
/// |-----------------------------|--------------------------------------------------------|
/// | secure, usable records      | the records (S/MIME: and local certificates they hash) |
/// | secure absence, insecure    | the local store                                        |
/// | bogus, failure              | none, ever: the caller answers 4xx (never plaintext)    |
///
/// A bogus or failed lookup of any format makes the whole recipient bogus or failed: no other
/// format and no plaintext stands in for it. Otherwise the copy is sealed in the first format,
/// in the policy's order, that has usable keys (choose_keys).
///
/// With `dns.lowercase_retry`, a secure absence for a local part with capitals is looked up
/// once more in lowercase (policy: both RFCs hash the exact octets).
///
/// Failure policy: find() never throws for DNS, store or key problems; every one ends in a
/// lookup outcome and reports.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <mailseal/config/config.hpp>
#include <mailseal/discovery/evaluation_cache.hpp>
#include <mailseal/dns/resolver.hpp>
#include <mailseal/recipient/recipient.hpp>
#include <mailseal/seal/format.hpp>
#include <mailseal/seal/formats.hpp>

namespace mailseal::discovery {

/// One format's part of a recipient's discovery.
struct format_lookup {
    std::shared_ptr<const seal::format> format;
    /// The lookup that decided (the lowercase retry's, when it ran).
    dns::lookup_result lookup;
    bool lowercase_retry_used = false;
    /// The format's keys, one report per candidate, the precedence applied, and the problems
    /// of its files in the local store.
    seal::evaluation evaluation;
    /// `evaluation` was kept from an earlier message with the same records and files.
    bool kept = false;
};

struct recipient_keys {
    /// The address looked up: base local part @ A-label domain.
    std::string address;
    /// One per format of the recipient's policy, in its order of preference.
    std::vector<format_lookup> lookups;
    /// Why the user's local store directory could not be listed (not read after a bogus or
    /// failed lookup).
    std::vector<seal::candidate_report> store_problems;
    /// What sealing gets: the recipient's outcome and the keys of the format chosen.
    seal::key_set chosen;
};

/// What sealing gets from a recipient's lookups, in the policy's order of preference: the keys
/// of the first format that has usable keys, under the recipient's combined outcome (a bogus
/// or failed lookup of any format decides it, and then there are no keys). A format before
/// that one whose verdict found no key and is provisional (a library that could not be set up)
/// makes the set unsettled and keyless instead: the recipient's key may be the one it missed.
seal::key_set choose_keys(const std::vector<format_lookup>& lookups);

/// The files in a user's directory of the local key store, `<store>/<domain>/<user>/`, in name
/// order: regular files whose names do not start with a dot (each format picks its own by
/// extension). Layout in docs/keys.md.
struct local_store_listing {
    std::vector<std::filesystem::path> files;
    /// Why the directory could not be listed, or names that cannot name one safely.
    std::vector<seal::candidate_report> problems;
};

/// Blocking I/O. An empty `store` (not configured) or a missing directory lists nothing; a
/// user or domain that cannot name a directory safely (empty, ".", "..", '/' or NUL) lists
/// nothing and reports why. The domain is lowercased.
local_store_listing list_local_store(const std::filesystem::path& store, std::string_view user,
                                     std::string_view domain);

class key_discovery {
public:
    /// `blocking` runs the local store reads and key evaluation (a worker pool in the daemon,
    /// the tool's own io_context in a one-shot command).
    key_discovery(const config::config& cfg, dns::resolver& resolver, seal::format_set formats,
                  boost::asio::any_io_executor blocking);

    /// By value: the caller may start a lookup and await it after the recipient is gone.
    boost::asio::awaitable<recipient_keys> find(recipient::recipient rcpt);

    const seal::format_set& formats() const { return formats_; }

private:
    struct cache_use {
        bool kept = false;
        /// The digest of the inputs, to keep a new evaluation under; nullopt when a local file
        /// could not be read.
        std::optional<evaluation_cache::identity> identity;
    };
    /// Fills `l.evaluation` from the cache when it holds one for these inputs at `now`.
    /// Reads `files`: blocking unless there are none.
    cache_use use_kept(format_lookup& l, std::string_view address,
                       const std::vector<std::filesystem::path>& files,
                       std::chrono::system_clock::time_point now);

    const config::config& config_;
    dns::resolver& resolver_;
    seal::format_set formats_;
    boost::asio::any_io_executor blocking_;
    evaluation_cache cache_;
};

} // namespace mailseal::discovery
