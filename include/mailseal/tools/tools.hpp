#pragma once

/// The operator's key tools, subcommands of `mailseal`:
///
/// - `lookup ADDRESS`: what key discovery finds for an address: the owner name, the DNSSEC
///   outcome, every candidate record and local certificate decoded with the reason it is
///   usable or not, and the keys sealing would use. Exit status: 0 keys found, 1 none (secure
///   absence or nothing usable), 2 insecure zone and no local key, 3 bogus, 4 lookup failure;
///   64 bad address; 78 configuration (e.g. no trust anchor).
/// - `record --cert FILE ADDRESS`: the zone-file lines that publish a certificate as SMIMEA,
///   in presentation form and in RFC 3597 generic form (for servers that do not know type 53).
///   Exit status: 0; 64 bad arguments; 66 unreadable file or no certificate.

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>

#include <mailseal/config/config.hpp>

namespace mailseal::tools {

enum lookup_status : int { found = 0, absent = 1, insecure = 2, bogus = 3, failure = 4 };

int lookup(const config::config& cfg, const std::string& address, bool json, std::ostream& out,
           std::ostream& err);

struct record_options {
    std::filesystem::path certificate;
    unsigned usage = 3;
    unsigned selector = 0;
    unsigned matching_type = 0;
    std::uint32_t ttl = 3600;
};

int record(const config::config& cfg, const std::string& address, const record_options& options,
           std::ostream& out, std::ostream& err);

} // namespace mailseal::tools
