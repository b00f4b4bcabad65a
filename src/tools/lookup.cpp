#include <iomanip>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <sstream>
#include <sysexits.h>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange

#include <openssl/evp.h>

#include <mailseal/discovery/discovery.hpp>
#include <mailseal/dns/resolver.hpp>
#include <mailseal/lmtp/address.hpp>
#include <mailseal/tools/tools.hpp>
#include <mailseal/util/ascii.hpp>

#include "discovery_session.hpp"

namespace mailseal::tools {
namespace {

std::string sha256_hex(const std::vector<std::uint8_t>& data) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
        return {};
    }
    std::ostringstream hex;
    for (unsigned int i = 0; i < length; ++i) {
        hex << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(digest[i]);
    }
    return hex.str();
}

lookup_status status_of(const discovery::recipient_keys& found) {
    switch (found.lookup.result) {
    case dns::outcome::bogus:
        return bogus;
    case dns::outcome::failure:
        return failure;
    default:
        break;
    }
    if (!found.evaluation.keys.empty()) {
        return lookup_status::found;
    }
    return found.lookup.result == dns::outcome::insecure ? insecure : absent;
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
    }
    return "failure";
}

nlohmann::json to_json(const keys::candidate_report& r) {
    return {{"source", r.source},       {"usable", r.usable},
            {"selected", r.selected},   {"why", r.why},
            {"subject", r.subject},     {"emails", r.san_emails},
            {"key", r.key_description}, {"not_before", r.not_before},
            {"not_after", r.not_after}, {"sha256", r.sha256_fingerprint}};
}

nlohmann::json to_json(const discovery::recipient_keys& found, lookup_status status) {
    nlohmann::json candidates = nlohmann::json::array();
    for (const auto& r : found.evaluation.reports) {
        candidates.push_back(to_json(r));
    }
    nlohmann::json problems = nlohmann::json::array();
    for (const auto& r : found.local_problems) {
        problems.push_back(to_json(r));
    }
    nlohmann::json keys = nlohmann::json::array();
    for (const auto& k : found.evaluation.keys) {
        keys.push_back({{"source", k.source},
                        {"type", keys::to_string(k.type)},
                        {"bits", k.bits},
                        {"spki_sha256", sha256_hex(k.spki_der)}});
    }
    return {{"address", found.address},
            {"owner", found.lookup.owner},
            {"dnssec", dns::to_string(found.lookup.result)},
            {"detail", found.lookup.detail},
            {"nxdomain", found.lookup.nxdomain},
            {"unparsable", found.lookup.unparsable},
            {"lowercase_retry", found.lowercase_retry_used},
            {"candidates", std::move(candidates)},
            {"local_problems", std::move(problems)},
            {"keys", std::move(keys)},
            {"decision", found.evaluation.decision},
            {"status", to_string(status)}};
}

void print_report(std::ostream& out, const keys::candidate_report& r) {
    out << "  [" << (r.usable ? (r.selected ? "used" : "usable") : "unusable") << "] " << r.source
        << "\n";
    if (!r.why.empty()) {
        out << "      why:     " << util::printable(r.why) << "\n";
    }
    if (!r.subject.empty()) {
        out << "      subject: " << util::printable(r.subject) << "\n";
    }
    for (const auto& email : r.san_emails) {
        out << "      email:   " << util::printable(email) << "\n";
    }
    if (!r.key_description.empty()) {
        out << "      key:     " << r.key_description << "\n";
    }
    if (!r.not_before.empty()) {
        out << "      valid:   " << r.not_before << " to " << r.not_after << "\n";
    }
    if (!r.sha256_fingerprint.empty()) {
        out << "      sha256:  " << r.sha256_fingerprint << "\n";
    }
}

void print_text(std::ostream& out, const discovery::recipient_keys& found, lookup_status status) {
    const auto& l = found.lookup;
    out << "address:  " << found.address << "\n";
    out << "owner:    " << l.owner << "\n";
    out << "dnssec:   " << dns::to_string(l.result);
    if (l.result == dns::outcome::secure_records) {
        out << " (" << l.records.size() << " record" << (l.records.size() == 1 ? "" : "s");
        if (l.unparsable > 0) {
            out << ", " << l.unparsable << " too short to parse";
        }
        out << ")";
    } else if (l.result == dns::outcome::secure_absent) {
        out << (l.nxdomain ? " (NXDOMAIN)" : " (NODATA)");
    }
    if (!l.detail.empty()) {
        out << ": " << util::printable(l.detail);
    }
    out << "\n";
    if (found.lowercase_retry_used) {
        out << "          (looked up again in lowercase after a secure absence)\n";
    }
    if (!found.evaluation.reports.empty() || !found.local_problems.empty()) {
        out << "candidates:\n";
        for (const auto& r : found.evaluation.reports) {
            print_report(out, r);
        }
        for (const auto& r : found.local_problems) {
            print_report(out, r);
        }
    }
    out << "decision: " << found.evaluation.decision << "\n";
    out << "sealing would use " << found.evaluation.keys.size() << " key"
        << (found.evaluation.keys.size() == 1 ? "" : "s") << " (" << to_string(status) << ")\n";
    for (const auto& k : found.evaluation.keys) {
        out << "  " << keys::to_string(k.type) << " " << k.bits << " bits from " << k.source
            << ", SPKI sha256 " << sha256_hex(k.spki_der) << "\n";
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
            found = co_await discovery.find(*parsed);
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
