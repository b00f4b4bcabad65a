// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <sstream>
#include <sysexits.h>
#include <unistd.h>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange

#include <mailseal/discovery/discovery.hpp>
#include <mailseal/lmtp/address.hpp>
#include <mailseal/log/log.hpp>
#include <mailseal/monitor/seen.hpp>
#include <mailseal/recipient/recipient.hpp>
#include <mailseal/seal/format.hpp>
#include <mailseal/tools/tools.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/replace_file.hpp>

#include "check_host.hpp"
#include "discovery_session.hpp"

namespace mailseal::tools {
namespace {

using monitor::critical;
using monitor::ok;
using monitor::severity;
using monitor::unknown;
using monitor::warning;
using time_point = std::chrono::system_clock::time_point;

/// Whole days from `now` until `expires` (negative once expired), rounded towards zero.
int days_left(time_point expires, time_point now) {
    auto left = expires - now;
    return static_cast<int>(std::chrono::duration_cast<std::chrono::hours>(left).count() / 24);
}

/// `expired` is the severity of an expired certificate or key: critical for one in use, a
/// warning for one that is only lying in the store.
void check_expiry(monitor::verdict& v, const std::optional<time_point>& expires,
                  const std::string& what, const check_options& options, time_point at,
                  severity expired) {
    if (!expires) {
        return;
    }
    if (*expires < at) {
        v.raise(expired,
                what + " expired " + std::to_string(-days_left(*expires, at)) + " days ago");
    } else if (days_left(*expires, at) < options.warn_days) {
        v.raise(warning, what + " expires in " + std::to_string(days_left(*expires, at)) + " days");
    }
}

void judge_lookup(monitor::verdict& v, const discovery::format_lookup& l,
                  const check_options& options, time_point at, bool only_key) {
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
        // With one key, its expiry ends sealing for the user: say so.
        check_expiry(v, key.expires, only_key ? "the only key, " + key.source + "," : key.source,
                     options, at, critical);
        if (only_key && key.expires && *key.expires >= at &&
            days_left(*key.expires, at) < options.warn_days) {
            v.findings.back().text += ": after that no key is usable and seal.on_no_key applies "
                                      "to this user's mail; publish a new key first";
        }
        if (key.expires) {
            double days = std::chrono::duration<double>(*key.expires - at).count() / 86400.0;
            v.days_to_expiry = v.days_to_expiry ? std::min(*v.days_to_expiry, days) : days;
        }
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
        check_expiry(v, report.not_after, report.source, options, at, warning);
    }
}

monitor::verdict judge_keys(const discovery::recipient_keys& found, const check_options& options,
                            time_point at) {
    monitor::verdict v;
    v.kind = "keys";
    v.name = found.address;
    bool only_key = found.chosen.keys.size() == 1;
    for (const auto& l : found.lookups) {
        judge_lookup(v, l, options, at, only_key && l.format == found.chosen.format);
    }
    for (const auto& problem : found.store_problems) {
        v.raise(warning, problem.source + ": " + problem.why);
    }
    if (found.chosen.unsettled) {
        v.raise(critical, "keys unsettled: a format could not judge its keys this time (its "
                          "library could not be set up); deliveries get 451 4.3.0");
    }
    const auto& keys = found.chosen.keys;
    v.summary = std::to_string(keys.size()) + " key" + (keys.size() == 1 ? "" : "s") + " (";
    if (found.chosen.format) {
        v.summary += std::string(config::to_string(found.chosen.format->id())) + ", ";
    }
    v.summary += std::string(dns::to_string(found.chosen.outcome)) + ")";
    return v;
}

/// The human line: the summary, then every finding.
std::string line_of(const monitor::verdict& v) {
    std::string text = v.summary;
    for (const auto& f : v.findings) {
        text += (text.empty() ? "" : "; ") + f.text;
    }
    return text;
}

std::string_view priority_prefix(severity s) {
    switch (s) {
    case ok:
        return "<6>";
    case warning:
        return "<4>";
    case critical:
    case unknown:
        return "<3>";
    }
    return "<3>";
}

void print_human(const std::vector<monitor::verdict>& verdicts, std::ostream& out) {
    // systemd reads a "<N>" prefix on a line of a service's standard output as its syslog
    // priority (sd-daemon(3)); only when that output is the journal's stream.
    bool journal = log::is_journal_stream(STDOUT_FILENO);
    for (const auto& v : verdicts) {
        auto prefix = journal ? priority_prefix(v.level) : std::string_view();
        out << prefix << monitor::to_string(v.level) << " " << util::printable(v.name) << ": "
            << util::printable(line_of(v)) << "\n";
        for (const auto& line : v.publish) {
            out << prefix << "  publish: " << util::printable(line) << "\n";
        }
        for (const auto& line : v.remove) {
            out << prefix << "  remove: " << util::printable(line) << "\n";
        }
    }
}

nlohmann::json to_json(const monitor::verdict& v) {
    nlohmann::json findings = nlohmann::json::array();
    for (const auto& f : v.findings) {
        findings.push_back({{"status", monitor::to_string(f.level)}, {"text", f.text}});
    }
    nlohmann::json j = {{"kind", v.kind},
                        {"name", v.name},
                        {"code", static_cast<int>(v.level)},
                        {"status", monitor::to_string(v.level)},
                        {"summary", v.summary},
                        {"findings", findings},
                        {"publish", v.publish},
                        {"remove", v.remove}};
    if (v.days_to_expiry) {
        j["days_to_expiry"] = *v.days_to_expiry;
    }
    return j;
}

/// A Prometheus label value: backslash, double quote and newline escaped.
std::string label_value(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\\' || c == '"') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string prometheus_text(const std::vector<monitor::verdict>& verdicts, time_point now) {
    std::ostringstream text;
    text << "# HELP mailseal_dane_check_status mailseal check's verdict per checked name: 0 OK, "
            "1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n"
            "# TYPE mailseal_dane_check_status gauge\n";
    for (const auto& v : verdicts) {
        text << "mailseal_dane_check_status{kind=\"" << label_value(v.kind) << "\",name=\""
             << label_value(v.name) << "\"} " << static_cast<int>(v.level) << "\n";
    }
    text << "# HELP mailseal_dane_expiry_days Days until the first certificate or key in use "
            "expires (negative once expired).\n"
            "# TYPE mailseal_dane_expiry_days gauge\n";
    text.precision(6);
    text << std::fixed;
    for (const auto& v : verdicts) {
        if (v.days_to_expiry) {
            text << "mailseal_dane_expiry_days{kind=\"" << label_value(v.kind) << "\",name=\""
                 << label_value(v.name) << "\"} " << *v.days_to_expiry << "\n";
        }
    }
    text << "# HELP mailseal_dane_check_timestamp_seconds When mailseal check last ran.\n"
            "# TYPE mailseal_dane_check_timestamp_seconds gauge\n"
            "mailseal_dane_check_timestamp_seconds "
         << std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()
         << "\n";
    return text.str();
}

} // namespace

int cannot_run(bool json, std::string_view what, std::string_view why, std::ostream& out) {
    if (json) {
        nlohmann::json report = {{"code", static_cast<int>(unknown)},
                                 {"status", monitor::to_string(unknown)},
                                 {"error", std::string(what) + ": " + std::string(why)},
                                 {"checks", nlohmann::json::array()}};
        out << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
        out << "UNKNOWN " << what << ": " << util::printable(why) << "\n";
    }
    return unknown;
}

namespace {

/// A judged time at most this far from now: a century covers every certificate and key.
constexpr auto farthest = std::chrono::hours(24 * 36525);

} // namespace

std::optional<time_point> parse_when(std::string_view text, time_point now) {
    if (!text.empty() && text.front() == '+') {
        auto digits = text.substr(1, text.size() < 2 ? 0 : text.size() - 2);
        if (text.size() < 3 || digits.size() > 9 ||
            digits.find_first_not_of("0123456789") != std::string_view::npos) {
            return std::nullopt;
        }
        std::int64_t number = std::stoll(std::string(digits));
        std::chrono::minutes ahead{0};
        switch (text.back()) {
        case 'd':
            ahead = std::chrono::minutes(number * 24 * 60);
            break;
        case 'h':
            ahead = std::chrono::minutes(number * 60);
            break;
        case 'm':
            ahead = std::chrono::minutes(number);
            break;
        default:
            return std::nullopt;
        }
        if (ahead > farthest) {
            return std::nullopt;
        }
        return now + ahead;
    }
    std::tm parts{};
    std::istringstream in{std::string(text)};
    if (text.size() == 10) {
        in >> std::get_time(&parts, "%Y-%m-%d");
    } else if (text.size() == 20 && text.back() == 'Z') {
        in >> std::get_time(&parts, "%Y-%m-%dT%H:%M:%S");
    } else {
        return std::nullopt;
    }
    if (in.fail()) {
        return std::nullopt;
    }
    auto asked = parts;
    std::time_t seconds = ::timegm(&parts);
    // timegm() normalises 2027-02-31 to 2027-03-03: a date that does not come back is wrong.
    if (seconds == -1 || parts.tm_year != asked.tm_year || parts.tm_mon != asked.tm_mon ||
        parts.tm_mday != asked.tm_mday || parts.tm_hour != asked.tm_hour ||
        parts.tm_min != asked.tm_min || parts.tm_sec != asked.tm_sec) {
        return std::nullopt;
    }
    // Compared in seconds first: a time_point counts nanoseconds and ends in 2262.
    auto limit = std::chrono::duration_cast<std::chrono::seconds>(farthest).count();
    auto from_now = static_cast<std::int64_t>(seconds) -
                    static_cast<std::int64_t>(std::chrono::system_clock::to_time_t(now));
    if (from_now > limit || from_now < -limit) {
        return std::nullopt;
    }
    return std::chrono::system_clock::from_time_t(seconds);
}

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
    auto now = std::chrono::system_clock::now();
    auto at = options.at.value_or(now);
    auto addresses = options.all || options.host ? known_addresses(cfg) : options.addresses;
    std::vector<lmtp::address> parsed;
    for (const auto& a : addresses) {
        auto p = lmtp::parse_forward_path("<" + a + ">", true);
        if (!p || p->domain.empty()) {
            err << "mailseal: check: not an address: " << util::printable(a) << "\n";
            return EX_USAGE;
        }
        parsed.push_back(std::move(*p));
    }
    host_check_context context{cfg, options, now, at, {}};
    bool tlsa_wanted = !options.tlsa_host.empty() || options.host;
    if (tlsa_wanted) {
        auto loaded = monitor::seen_records::load(options.state_file);
        if (auto* why = std::get_if<std::string>(&loaded)) {
            // Never a fresh start: a lost history would hold the gate shut, or worse.
            err << "mailseal: check: " << util::printable(*why) << "\n";
            return cannot_run(options.json, "state", *why, out);
        }
        context.seen = std::move(std::get<monitor::seen_records>(loaded));
    }
    std::vector<monitor::verdict> verdicts;
    std::optional<severity> gate;
    int setup = run_discovery_and_dns(
        cfg, err,
        [&](discovery::key_discovery& discovery,
            dns::resolver& resolver) -> boost::asio::awaitable<void> {
            if (!options.tlsa_host.empty()) {
                auto result = co_await check_tlsa_host(context, resolver, options.tlsa_host);
                verdicts.push_back(std::move(result.result));
                if (options.gate) {
                    gate = result.next.gate;
                    verdicts.back().summary = "gate " +
                                              std::string(monitor::to_string(result.next.gate)) +
                                              "; " + verdicts.back().summary;
                }
            }
            if (options.host) {
                auto found = co_await check_this_host(context, resolver);
                verdicts.insert(verdicts.end(), found.begin(), found.end());
            }
            for (const auto& address : parsed) {
                auto found = co_await discovery.find(recipient::normalise(cfg, address));
                verdicts.push_back(judge_keys(found, options, at));
            }
        });
    if (setup != EX_OK) {
        // The check cannot run (stderr says why): for a monitoring system, unknown.
        return cannot_run(options.json, "setup", "the resolver or the key policy cannot be set up",
                          out);
    }
    if (tlsa_wanted && context.seen.changed()) {
        // Without the record of first sightings, --gate can never pass: say why, loudly.
        if (auto why = context.seen.save(options.state_file)) {
            err << "mailseal: check: first-seen times not kept: " << util::printable(*why) << "\n";
        }
    }
    severity worst = ok;
    for (const auto& v : verdicts) {
        worst = std::max(worst, v.level);
    }
    if (options.json) {
        nlohmann::json checks = nlohmann::json::array();
        for (const auto& v : verdicts) {
            checks.push_back(to_json(v));
        }
        nlohmann::json report = {{"code", static_cast<int>(gate.value_or(worst))},
                                 {"status", monitor::to_string(gate.value_or(worst))},
                                 {"at", seal::iso_time(at)},
                                 {"checks", checks}};
        // Names and texts may come from a remote server: invalid UTF-8 is replaced, not thrown.
        out << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
        print_human(verdicts, out);
        if (verdicts.empty()) {
            out << "OK no addresses to check\n";
        }
    }
    if (options.prometheus) {
        if (auto why = util::replace_file(*options.prometheus, prometheus_text(verdicts, now))) {
            err << "mailseal: check: " << util::printable(*why) << "\n";
            // Unknown, unless the check itself found something critical to say.
            if (gate.value_or(worst) < critical) {
                return unknown;
            }
        }
    }
    return gate.value_or(worst);
}

} // namespace mailseal::tools
