// SPDX-License-Identifier: Apache-2.0
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <sysexits.h>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange

#include <mailseal/discovery/discovery.hpp>
#include <mailseal/dns/resolver.hpp>
#include <mailseal/lmtp/address.hpp>
#include <mailseal/recipient/recipient.hpp>
#include <mailseal/tools/tools.hpp>
#include <mailseal/util/ascii.hpp>

#include "discovery_session.hpp"

namespace mailseal::tools {
namespace {

lookup_status status_of(const discovery::recipient_keys& found) {
    switch (found.chosen.outcome) {
    case dns::outcome::bogus:
        return bogus;
    case dns::outcome::failure:
        return failure;
    default:
        break;
    }
    if (found.chosen.unsettled) {
        return unsettled;
    }
    if (!found.chosen.keys.empty()) {
        return lookup_status::found;
    }
    return found.chosen.outcome == dns::outcome::insecure ? insecure : absent;
}

std::string time_text(const std::optional<std::chrono::system_clock::time_point>& t) {
    return t ? seal::iso_time(*t) : std::string();
}

std::string_view to_string(lookup_status s) {
    switch (s) {
    case lookup_status::found:
        return "found";
    case absent:
        return "absent";
    case insecure:
        return "insecure";
    case bogus:
        return "bogus";
    case failure:
        return "failure";
    case unsettled:
        return "unsettled";
    }
    return "failure";
}

nlohmann::json to_json(const seal::candidate_report& r) {
    return {{"source", r.source},
            {"usable", r.usable},
            {"selected", r.selected},
            {"why", r.why},
            {"subject", r.subject},
            {"names", r.names},
            {"key", r.key_description},
            {"not_before", time_text(r.not_before)},
            {"not_after", time_text(r.not_after)},
            {"fingerprint", r.fingerprint}};
}

nlohmann::json to_json(const seal::key& k, const seal::format& f) {
    return {{"format", config::to_string(f.id())},
            {"source", k.source},
            {"type", k.algorithm},
            {"bits", k.bits},
            {"fingerprint", k.fingerprint},
            {"expires", time_text(k.expires)}};
}

nlohmann::json to_json(const discovery::format_lookup& l) {
    nlohmann::json candidates = nlohmann::json::array();
    for (const auto& r : l.evaluation.reports) {
        candidates.push_back(to_json(r));
    }
    nlohmann::json problems = nlohmann::json::array();
    for (const auto& r : l.evaluation.local_problems) {
        problems.push_back(to_json(r));
    }
    nlohmann::json keys = nlohmann::json::array();
    for (const auto& k : l.evaluation.keys) {
        keys.push_back(to_json(k, *l.format));
    }
    return {{"format", config::to_string(l.format->id())},
            {"record", l.format->rr_name()},
            {"owner", l.lookup.owner},
            {"dnssec", dns::to_string(l.lookup.result)},
            {"detail", l.lookup.detail},
            {"ttl", l.lookup.ttl},
            {"nxdomain", l.lookup.nxdomain},
            {"unparsable", l.evaluation.unparsable},
            {"lowercase_retry", l.lowercase_retry_used},
            {"candidates", std::move(candidates)},
            {"local_problems", std::move(problems)},
            {"keys", std::move(keys)},
            {"decision", l.evaluation.decision}};
}

nlohmann::json to_json(const discovery::recipient_keys& found, lookup_status status) {
    nlohmann::json lookups = nlohmann::json::array();
    for (const auto& l : found.lookups) {
        lookups.push_back(to_json(l));
    }
    nlohmann::json problems = nlohmann::json::array();
    for (const auto& r : found.store_problems) {
        problems.push_back(to_json(r));
    }
    nlohmann::json keys = nlohmann::json::array();
    for (const auto& k : found.chosen.keys) {
        keys.push_back(to_json(k, *found.chosen.format));
    }
    nlohmann::json format = nullptr;
    if (found.chosen.format) {
        format = config::to_string(found.chosen.format->id());
    }
    return {{"address", found.address},
            {"status", to_string(status)},
            {"dnssec", dns::to_string(found.chosen.outcome)},
            {"format", std::move(format)},
            {"keys", std::move(keys)},
            {"lookups", std::move(lookups)},
            {"store_problems", std::move(problems)}};
}

void print_report(std::ostream& out, const seal::candidate_report& r) {
    out << "    [" << (r.usable ? (r.selected ? "used" : "usable") : "unusable") << "] "
        << util::printable(r.source) << "\n";
    if (!r.why.empty()) {
        out << "        why:         " << util::printable(r.why) << "\n";
    }
    if (!r.subject.empty()) {
        out << "        subject:     " << util::printable(r.subject) << "\n";
    }
    for (const auto& name : r.names) {
        out << "        names:       " << util::printable(name) << "\n";
    }
    if (!r.key_description.empty()) {
        out << "        key:         " << r.key_description << "\n";
    }
    if (r.not_before) {
        out << "        valid:       " << time_text(r.not_before) << " to "
            << (r.not_after ? time_text(r.not_after) : std::string("(no expiry)")) << "\n";
    }
    if (!r.fingerprint.empty()) {
        out << "        fingerprint: " << r.fingerprint << "\n";
    }
}

void print_lookup(std::ostream& out, const discovery::format_lookup& fl) {
    const auto& l = fl.lookup;
    out << fl.format->rr_name() << "\n";
    out << "  owner:    " << l.owner << "\n";
    out << "  dnssec:   " << dns::to_string(l.result);
    if (l.result == dns::outcome::secure_records) {
        out << " (" << l.rdata.size() << " record" << (l.rdata.size() == 1 ? "" : "s");
        if (fl.evaluation.unparsable > 0) {
            out << ", " << fl.evaluation.unparsable << " too short to parse";
        }
        out << ", TTL " << l.ttl << ")";
    } else if (l.result == dns::outcome::secure_absent) {
        out << (l.nxdomain ? " (NXDOMAIN)" : " (NODATA)");
    }
    if (!l.detail.empty()) {
        out << ": " << util::printable(l.detail);
    }
    out << "\n";
    if (fl.lowercase_retry_used) {
        out << "            (looked up again in lowercase after a secure absence)\n";
    }
    if (!fl.evaluation.reports.empty() || !fl.evaluation.local_problems.empty()) {
        out << "  candidates:\n";
        for (const auto& r : fl.evaluation.reports) {
            print_report(out, r);
        }
        for (const auto& r : fl.evaluation.local_problems) {
            print_report(out, r);
        }
    }
    out << "  decision: " << fl.evaluation.decision << "\n";
}

void print_text(std::ostream& out, const discovery::recipient_keys& found, lookup_status status) {
    out << "address:  " << found.address << "\n";
    for (const auto& l : found.lookups) {
        print_lookup(out, l);
    }
    if (!found.store_problems.empty()) {
        out << "local store:\n";
        for (const auto& r : found.store_problems) {
            print_report(out, r);
        }
    }
    const auto& keys = found.chosen.keys;
    out << "sealing would use " << keys.size() << " key" << (keys.size() == 1 ? "" : "s");
    if (found.chosen.format) {
        out << " (" << config::to_string(found.chosen.format->id()) << ")";
    }
    out << ": " << to_string(status) << ", DNSSEC " << dns::to_string(found.chosen.outcome) << "\n";
    for (const auto& k : keys) {
        out << "  " << k.algorithm << " " << k.bits << " bits from " << util::printable(k.source)
            << ", fingerprint " << k.fingerprint << "\n";
    }
}

} // namespace

int lookup(const config::config& cfg, const std::string& address, bool json, std::ostream& out,
           std::ostream& err) {
    auto parsed = lmtp::parse_forward_path("<" + address + ">", true);
    if (!parsed || parsed->domain.empty()) {
        err << "mailseal: lookup: not an address: " << address << "\n";
        return EX_USAGE;
    }
    std::optional<discovery::recipient_keys> found;
    int setup = run_discovery(
        cfg, err, [&](discovery::key_discovery& discovery) -> boost::asio::awaitable<void> {
            found = co_await discovery.find(recipient::normalise(cfg, *parsed));
        });
    if (setup != EX_OK) {
        return setup;
    }
    auto status = status_of(*found);
    if (json) {
        // Certificate text is not always valid UTF-8: replace bad sequences rather than abort.
        out << to_json(*found, status).dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
            << "\n";
    } else {
        print_text(out, *found, status);
    }
    return status;
}

} // namespace mailseal::tools
