#include <algorithm>
#include <chrono>
#include <ostream>
#include <set>
#include <sysexits.h>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange

#include <mailseal/discovery/discovery.hpp>
#include <mailseal/lmtp/address.hpp>
#include <mailseal/recipient/recipient.hpp>
#include <mailseal/tools/tools.hpp>
#include <mailseal/util/ascii.hpp>

#include "discovery_session.hpp"

namespace mailseal::tools {
namespace {

/// One address's findings: the worst severity and what caused it.
struct verdict {
    check_status status = ok;
    std::vector<std::string> notes;

    void raise(check_status s, std::string note) {
        status = std::max(status, s);
        notes.push_back(std::move(note));
    }
};

std::string_view label(check_status s) {
    switch (s) {
    case ok:
        return "OK";
    case warning:
        return "WARNING";
    case critical:
        return "CRITICAL";
    }
    return "CRITICAL";
}

/// Whole days from now until `expires` (negative once expired), rounded towards zero.
int days_left(std::chrono::system_clock::time_point expires) {
    auto left = expires - std::chrono::system_clock::now();
    return static_cast<int>(std::chrono::duration_cast<std::chrono::hours>(left).count() / 24);
}

/// `expired` is the severity of an expired certificate or key: critical for one in use, a
/// warning for one that is only lying in the store.
void check_expiry(verdict& v, const std::optional<std::chrono::system_clock::time_point>& expires,
                  const std::string& what, int warn_days, check_status expired) {
    if (!expires) {
        return;
    }
    if (*expires < std::chrono::system_clock::now()) {
        v.raise(expired, what + " expired " + std::to_string(-days_left(*expires)) + " days ago");
    } else if (days_left(*expires) < warn_days) {
        v.raise(warning, what + " expires in " + std::to_string(days_left(*expires)) + " days");
    }
}

void judge_lookup(verdict& v, const discovery::format_lookup& l, int warn_days) {
    const auto& lookup = l.lookup;
    std::string record(l.format->rr_name());
    switch (lookup.result) {
    case dns::outcome::bogus:
        v.raise(critical, "DNSSEC bogus: " + lookup.detail);
        return;
    case dns::outcome::failure:
        v.raise(critical, "lookup failed: " + lookup.detail);
        return;
    case dns::outcome::insecure:
        v.raise(warning, "zone not DNSSEC-signed: " + record + " records cannot be used");
        break;
    case dns::outcome::secure_absent:
    case dns::outcome::secure_records:
        break;
    }
    for (const auto& report : l.evaluation.reports) {
        if (!report.usable && !report.local) {
            v.raise(warning, report.source + " unusable: " + report.why);
        }
    }
    for (const auto& problem : l.evaluation.local_problems) {
        v.raise(warning, problem.source + ": " + problem.why);
    }
    for (const auto& key : l.evaluation.keys) {
        check_expiry(v, key.expires, key.source, warn_days, critical);
    }
    for (const auto& report : l.evaluation.reports) {
        if (!report.local || report.in_use) {
            continue;
        }
        // A report without a key (a revocation certificate) has nothing to publish.
        if (lookup.result == dns::outcome::secure_records && !report.fingerprint.empty()) {
            v.raise(warning,
                    report.source + " is not published in DNS (renewed without updating DNS?)");
        }
        check_expiry(v, report.not_after, report.source, warn_days, warning);
    }
}

verdict judge(const discovery::recipient_keys& found, int warn_days) {
    verdict v;
    for (const auto& l : found.lookups) {
        judge_lookup(v, l, warn_days);
    }
    for (const auto& problem : found.store_problems) {
        v.raise(warning, problem.source + ": " + problem.why);
    }
    if (found.chosen.unsettled) {
        v.raise(critical, "keys unsettled: a format could not judge its keys this time (its "
                          "library could not be set up); deliveries get 451 4.3.0");
    }
    return v;
}

std::string summary(const discovery::recipient_keys& found, const verdict& v) {
    const auto& keys = found.chosen.keys;
    std::string out = std::to_string(keys.size()) + " key" + (keys.size() == 1 ? "" : "s") + " (";
    if (found.chosen.format) {
        out += std::string(config::to_string(found.chosen.format->id())) + ", ";
    }
    out += std::string(dns::to_string(found.chosen.outcome)) + ")";
    for (const auto& note : v.notes) {
        out += "; " + note;
    }
    return out;
}

} // namespace

std::optional<std::string> address_from_maildir(const std::string& maildir_template,
                                                const std::filesystem::path& maildir) {
    std::vector<std::string> pattern;
    for (const auto& part : std::filesystem::path(maildir_template)) {
        pattern.push_back(part.string());
    }
    std::vector<std::string> actual;
    for (const auto& part : maildir) {
        actual.push_back(part.string());
    }
    if (pattern.size() != actual.size()) {
        return std::nullopt;
    }
    std::optional<std::string> user;
    std::optional<std::string> domain;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] == "%u") {
            return actual[i];
        }
        if (pattern[i] == "%n") {
            user = actual[i];
        } else if (pattern[i] == "%d") {
            domain = actual[i];
        } else if (pattern[i].find('%') != std::string::npos) {
            return std::nullopt; // an escape inside a component: not recoverable
        }
    }
    if (!user || !domain) {
        return std::nullopt;
    }
    return *user + "@" + *domain;
}

std::vector<std::string> known_addresses(const config::config& cfg) {
    std::set<std::string> found;
    std::error_code ec;
    if (!cfg.keys.local_store.empty()) {
        for (const auto& domain : std::filesystem::directory_iterator(cfg.keys.local_store, ec)) {
            std::error_code inner;
            if (!domain.is_directory(inner)) {
                continue;
            }
            for (const auto& user : std::filesystem::directory_iterator(domain.path(), inner)) {
                std::error_code kind;
                if (user.is_directory(kind)) {
                    found.insert(user.path().filename().string() + "@" +
                                 domain.path().filename().string());
                }
            }
        }
    }
    for (const auto& maildir : recipient::existing_maildirs(cfg)) {
        if (auto address = address_from_maildir(cfg.mailbox.maildir, maildir)) {
            found.insert(*address);
        }
    }
    return {found.begin(), found.end()};
}

int check(const config::config& cfg, const check_options& options, std::ostream& out,
          std::ostream& err) {
    auto addresses = options.all ? known_addresses(cfg) : options.addresses;
    std::vector<lmtp::address> parsed;
    for (const auto& a : addresses) {
        auto p = lmtp::parse_forward_path("<" + a + ">", true);
        if (!p || p->domain.empty()) {
            err << "mailseal: check: not an address: " << a << "\n";
            return EX_USAGE;
        }
        parsed.push_back(std::move(*p));
    }
    check_status worst = ok;
    int setup = run_discovery(
        cfg, err, [&](discovery::key_discovery& discovery) -> boost::asio::awaitable<void> {
            for (const auto& address : parsed) {
                auto found = co_await discovery.find(recipient::normalise(cfg, address));
                auto v = judge(found, options.days);
                worst = std::max(worst, v.status);
                out << label(v.status) << " " << util::printable(found.address) << ": "
                    << util::printable(summary(found, v)) << "\n";
            }
        });
    if (setup != EX_OK) {
        return setup;
    }
    if (parsed.empty()) {
        out << "OK no addresses to check\n";
    }
    return worst;
}

} // namespace mailseal::tools
