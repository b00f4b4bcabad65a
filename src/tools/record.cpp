// SPDX-License-Identifier: Apache-2.0
#include <chrono>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sysexits.h>

#include <mailseal/dns/lookup.hpp>
#include <mailseal/dns/name.hpp>
#include <mailseal/lmtp/address.hpp>
#include <mailseal/recipient/recipient.hpp>
#include <mailseal/seal/formats.hpp>
#include <mailseal/seal/smime/certificate_file.hpp>
#include <mailseal/tools/tools.hpp>
#include <mailseal/util/ascii.hpp>

namespace mailseal::tools {
int record(const config::config& cfg, const std::string& address, const record_options& options,
           std::ostream& out, std::ostream& err) {
    if (options.usage.value_or(0) > 3 || options.selector.value_or(0) > 1 ||
        options.matching_type.value_or(0) > 2) {
        err << "mailseal: record: usage must be 0..3, selector 0..1, matching type 0..2\n";
        return EX_USAGE;
    }
    auto parsed = lmtp::parse_forward_path("<" + address + ">", true);
    if (!parsed || parsed->domain.empty()) {
        err << "mailseal: record: not an address: " << util::printable(address) << "\n";
        return EX_USAGE;
    }
    auto rcpt = recipient::normalise(cfg, *parsed);
    if (!rcpt.a_label) {
        err << "mailseal: record: not a valid IDNA2008 domain: " << util::printable(parsed->domain)
            << "\n";
        return EX_USAGE;
    }
    auto formats = seal::format_set::load(cfg);
    if (auto* problem = std::get_if<std::string>(&formats)) {
        err << "mailseal: " << *problem << "\n";
        return EX_CONFIG;
    }
    auto found = std::get<seal::format_set>(formats).for_file(options.key);
    if (auto* why = std::get_if<std::string>(&found)) {
        err << "mailseal: record: " << util::printable(options.key.string()) << ": "
            << util::printable(*why) << "\n";
        return EX_NOINPUT;
    }
    const auto& chosen = std::get<std::shared_ptr<const seal::format>>(found);
    seal::record_parameters parameters{options.usage, options.selector, options.matching_type};
    auto made = chosen->records(options.key, rcpt.key_address(), parameters,
                                std::chrono::system_clock::now());
    if (auto* refusal = std::get_if<seal::record_refusal>(&made)) {
        err << "mailseal: record: " << util::printable(refusal->why) << "\n";
        return refusal->bad_parameters ? EX_USAGE : EX_NOINPUT;
    }
    std::string owner =
        dns::hashed_owner_name(rcpt.base_local_part, chosen->owner_label(), *rcpt.a_label) + ".";
    nlohmann::json records = nlohmann::json::array();
    for (const auto& r : std::get<std::vector<seal::published_record>>(made)) {
        if (options.json) {
            records.push_back({{"owner", owner},
                               {"ttl", options.ttl},
                               {"type", chosen->rr_name()},
                               {"rdata", r.presentation},
                               {"generic", "TYPE" + std::to_string(chosen->rr_type()) + " " +
                                               dns::generic_rdata(r.rdata)},
                               {"comments", r.comments}});
            continue;
        }
        for (const auto& comment : r.comments) {
            out << "; " << util::printable(comment) << "\n";
        }
        out << owner << " " << options.ttl << " IN " << chosen->rr_name() << " " << r.presentation
            << "\n";
        out << owner << " " << options.ttl << " IN TYPE" << chosen->rr_type() << " "
            << dns::generic_rdata(r.rdata) << "\n";
    }
    if (options.json) {
        nlohmann::json report = {{"address", rcpt.key_address()}, {"records", records}};
        out << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    return EX_OK;
}

int record_tlsa(const config::config& cfg, const tlsa_record_options& options, std::ostream& out,
                std::ostream& err) {
    if (options.host.empty() && cfg.server.hostname.empty()) {
        err << "mailseal: record: no host name: give --host, or server.hostname in --config\n";
        return EX_USAGE;
    }
    auto host = dns::to_a_label(options.host.empty() ? cfg.server.hostname : options.host);
    if (!host) {
        err << "mailseal: record: not a host name: "
            << util::printable(options.host.empty() ? cfg.server.hostname : options.host) << "\n";
        return EX_USAGE;
    }
    std::string owner = "_" + std::to_string(options.port) + "._tcp." + *host + ".";
    std::optional<std::string> current_data;
    nlohmann::json records = nlohmann::json::array();
    for (const auto& [role, file] :
         {std::pair<std::string, std::optional<std::filesystem::path>>{"current", options.current},
          {"next", options.next}}) {
        if (!file) {
            continue;
        }
        auto listing = seal::smime::read_certificate_file(*file);
        if (listing.certificates.empty()) {
            err << "mailseal: record: " << util::printable(file->string()) << ": "
                << util::printable(listing.problems.empty() ? "no certificate"
                                                            : listing.problems.front().why)
                << "\n";
            return EX_NOINPUT;
        }
        // A chain file starts with the server's own certificate, as Postfix reads it.
        auto& leaf = *listing.certificates.front().certificate;
        auto data = seal::smime::association_data(leaf, 1, 1);
        if (!data) {
            err << "mailseal: record: cannot encode " << util::printable(file->string()) << "\n";
            return EX_NOINPUT;
        }
        // TLSA's RDATA is SMIMEA's (RFC 8162 §2.1), presentation form included.
        auto rdata = seal::smime::to_presentation(seal::smime::smimea_record{3, 1, 1, *data});
        auto report = seal::smime::describe(leaf, "");
        bool same_key = role == "next" && current_data == rdata;
        if (options.json) {
            nlohmann::json entry = {{"role", role},
                                    {"owner", owner},
                                    {"ttl", options.ttl},
                                    {"type", "TLSA"},
                                    {"rdata", rdata},
                                    {"subject", report.subject},
                                    {"key", report.key_description},
                                    {"same_key_as_current", same_key}};
            if (report.not_after) {
                entry["expires"] = seal::iso_time(*report.not_after);
            }
            records.push_back(std::move(entry));
        } else {
            out << "; " << role << ": " << util::printable(report.subject) << ", "
                << util::printable(report.key_description);
            if (report.not_after) {
                out << ", expires " << seal::iso_time(*report.not_after);
            }
            out << "\n";
            if (same_key) {
                out << "; the next certificate keeps the current key: the record above serves "
                       "both\n";
            } else {
                out << owner << " " << options.ttl << " IN TLSA " << rdata << "\n";
            }
        }
        if (role == "current") {
            current_data = rdata;
        }
    }
    if (options.json) {
        nlohmann::json listing = {{"records", records}};
        out << listing.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    return EX_OK;
}

} // namespace mailseal::tools
