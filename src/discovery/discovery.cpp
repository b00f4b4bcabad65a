// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <system_error>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <mailseal/discovery/discovery.hpp>
#include <mailseal/log/log.hpp>
#include <mailseal/metrics/metrics.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/offload.hpp>

namespace mailseal::discovery {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

/// The same rule as for Maildir paths: a name that could leave the store directory is not
/// looked up.
bool safe_component(std::string_view name) {
    return !name.empty() && name != "." && name != ".." &&
           name.find_first_of(std::string_view("/\0", 2)) == std::string_view::npos;
}

seal::candidate_report store_problem(const fs::path& where, std::string why) {
    seal::candidate_report r;
    r.local = true;
    r.source = "local " + where.string();
    r.why = std::move(why);
    return r;
}

bool yields_no_keys(dns::outcome o) {
    return o == dns::outcome::bogus || o == dns::outcome::failure;
}

/// The recipient's outcome: a bogus or failed lookup of any format decides it; otherwise the
/// chosen format's, or with no keys the most telling of the others.
dns::outcome combined_outcome(const std::vector<format_lookup>& lookups,
                              const format_lookup* chosen) {
    auto any = [&](dns::outcome o) {
        return std::any_of(lookups.begin(), lookups.end(),
                           [&](const format_lookup& l) { return l.lookup.result == o; });
    };
    for (auto o : {dns::outcome::bogus, dns::outcome::failure}) {
        if (any(o)) {
            return o;
        }
    }
    if (chosen != nullptr) {
        return chosen->lookup.result;
    }
    for (auto o : {dns::outcome::secure_records, dns::outcome::secure_absent}) {
        if (any(o)) {
            return o;
        }
    }
    return dns::outcome::insecure;
}

} // namespace

seal::key_set choose_keys(const std::vector<format_lookup>& lookups) {
    seal::key_set out;
    const format_lookup* chosen = nullptr;
    bool refused = std::any_of(lookups.begin(), lookups.end(),
                               [](const auto& l) { return yields_no_keys(l.lookup.result); });
    if (!refused) {
        for (const auto& l : lookups) {
            if (!l.evaluation.keys.empty()) {
                chosen = &l;
                break;
            }
            if (l.evaluation.provisional) {
                out.unsettled = true;
                break;
            }
        }
    }
    out.outcome = combined_outcome(lookups, chosen);
    if (chosen != nullptr) {
        out.format = chosen->format;
        out.keys = chosen->evaluation.keys;
    }
    return out;
}

local_store_listing list_local_store(const fs::path& store, std::string_view user,
                                     std::string_view domain) {
    local_store_listing out;
    if (store.empty()) {
        return out;
    }
    if (!safe_component(user) || !safe_component(domain)) {
        out.problems.push_back(store_problem(store, "\"" + std::string(user) + "@" +
                                                        std::string(domain) +
                                                        "\" cannot name a store directory"));
        return out;
    }
    fs::path dir = store / util::ascii_lower(domain) / std::string(user);
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec == std::errc::no_such_file_or_directory) {
        return out;
    }
    if (ec) {
        out.problems.push_back(store_problem(dir, "cannot list: " + ec.message()));
        return out;
    }
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
        if (it->path().filename().string().starts_with(".")) {
            continue;
        }
        std::error_code type_ec;
        if (it->is_regular_file(type_ec)) {
            out.files.push_back(it->path());
        }
    }
    if (ec) {
        out.problems.push_back(store_problem(dir, "cannot list: " + ec.message()));
    }
    std::sort(out.files.begin(), out.files.end());
    return out;
}

key_discovery::cache_use key_discovery::use_kept(format_lookup& l, std::string_view address,
                                                 const std::vector<fs::path>& files,
                                                 std::chrono::system_clock::time_point now) {
    cache_use use;
    use.identity = evaluation_cache::identify(*l.format, address, l.lookup, files);
    auto kept = use.identity ? cache_.find(*use.identity, now) : std::nullopt;
    l.kept = kept.has_value();
    use.kept = l.kept;
    if (kept) {
        l.evaluation = std::move(*kept);
    }
    return use;
}

key_discovery::key_discovery(const config::config& cfg, dns::resolver& resolver,
                             seal::format_set formats, asio::any_io_executor blocking)
    : config_(cfg), resolver_(resolver), formats_(std::move(formats)),
      blocking_(std::move(blocking)), cache_(cfg.keys.cache_entries) {
    for (const auto& f : formats_.all()) {
        metrics::global().declare_key_format(config::to_string(f->id()));
    }
}

asio::awaitable<recipient_keys> key_discovery::find(recipient::recipient rcpt) {
    auto started = std::chrono::steady_clock::now();
    recipient_keys out;
    out.address = rcpt.key_address();
    auto policy = config_.seal.policy_for(rcpt.user, rcpt.domain);
    for (auto id : policy.formats) {
        format_lookup l;
        l.format = formats_.get(id);
        out.lookups.push_back(std::move(l));
    }

    if (!rcpt.a_label) {
        for (auto& l : out.lookups) {
            l.lookup.owner = "(none)";
            l.lookup.rr_type = l.format->rr_type();
            l.lookup.result = dns::outcome::failure;
            l.lookup.detail = "domain is not a valid IDNA2008 name";
        }
    } else if (!out.lookups.empty()) {
        auto ex = co_await asio::this_coro::executor;
        using lookup_op = decltype(asio::co_spawn(ex, resolver_.lookup({}, 0), asio::deferred));
        std::vector<lookup_op> ops;
        for (const auto& l : out.lookups) {
            auto owner = dns::hashed_owner_name(rcpt.base_local_part, l.format->owner_label(),
                                                *rcpt.a_label);
            ops.push_back(asio::co_spawn(
                ex, resolver_.lookup(std::move(owner), l.format->rr_type()), asio::deferred));
        }
        // Every format's lookup at once: the slowest sets the time, not their sum.
        auto [order, errors, results] =
            co_await asio::experimental::make_parallel_group(std::move(ops))
                .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
        for (std::size_t i = 0; i < out.lookups.size(); ++i) {
            if (errors[i]) {
                std::rethrow_exception(errors[i]);
            }
            out.lookups[i].lookup = std::move(results[i]);
        }
        auto lower = util::ascii_lower(rcpt.base_local_part);
        if (config_.dns.lowercase_retry && lower != rcpt.base_local_part) {
            for (auto& l : out.lookups) {
                if (l.lookup.result == dns::outcome::secure_absent) {
                    l.lookup = co_await resolver_.lookup(
                        dns::hashed_owner_name(lower, l.format->owner_label(), *rcpt.a_label),
                        l.format->rr_type());
                    l.lowercase_retry_used = true;
                }
            }
        }
    }

    bool any_refused = std::any_of(out.lookups.begin(), out.lookups.end(),
                                   [](const auto& l) { return yields_no_keys(l.lookup.result); });
    auto now = std::chrono::system_clock::now();
    static const std::vector<fs::path> no_files;
    if (any_refused) {
        for (auto& l : out.lookups) {
            l.evaluation.decision =
                yields_no_keys(l.lookup.result)
                    ? seal::refusal_decision(l.format->rr_name(), l.lookup.result)
                    : std::string(l.format->rr_name()) + " not used: another key lookup failed";
        }
    } else if (config_.keys.local_store.empty() &&
               std::all_of(out.lookups.begin(), out.lookups.end(), [&](format_lookup& l) {
                   return use_kept(l, out.address, no_files, now).kept;
               })) {
        // Every verdict was kept and no file is read: nothing blocks, so no trip to the pool.
    } else {
        // The local store is keyed like the mailbox: the user name as the Maildir sees it, and
        // the domain in A-label form.
        auto store_domain = rcpt.a_label.value_or(rcpt.domain);
        co_await util::run_on(blocking_, [&] {
            // The time the verdicts are made at, not the time the pool got to them.
            now = std::chrono::system_clock::now();
            auto listing = list_local_store(config_.keys.local_store, rcpt.user, store_domain);
            out.store_problems = std::move(listing.problems);
            for (auto& l : out.lookups) {
                std::vector<fs::path> files;
                std::copy_if(listing.files.begin(), listing.files.end(), std::back_inserter(files),
                             [&](const fs::path& f) { return l.format->stores(f); });
                auto kept = use_kept(l, out.address, files, now);
                if (!kept.kept) {
                    l.evaluation = l.format->evaluate(l.lookup, files, out.address, now);
                    if (kept.identity) {
                        cache_.store(*kept.identity, l.evaluation, now, l.lookup.ttl);
                    }
                }
            }
        });
    }

    out.chosen = choose_keys(out.lookups);

    metrics::global().key_discovery(std::chrono::steady_clock::now() - started);
    for (const auto& l : out.lookups) {
        metrics::global().key_lookup(config::to_string(l.format->id()),
                                     dns::to_string(l.lookup.result));
        if (!any_refused) {
            metrics::global().key_evaluation(l.kept);
        }
        log::info("key-lookup", {{"rcpt", "<" + out.address + ">"},
                                 {"format", std::string(config::to_string(l.format->id()))},
                                 {"owner", l.lookup.owner},
                                 {"dnssec", std::string(dns::to_string(l.lookup.result))},
                                 {"detail", l.lookup.detail},
                                 {"keys", std::to_string(l.evaluation.keys.size())},
                                 {"decision", l.evaluation.decision}});
    }
    co_return out;
}

} // namespace mailseal::discovery
