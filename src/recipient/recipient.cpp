// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <glob.h>
#include <memory>
#include <system_error>
#include <unordered_map>

#include <mailseal/dns/name.hpp>
#include <mailseal/recipient/recipient.hpp>
#include <mailseal/util/ascii.hpp>

namespace mailseal::recipient {
namespace {

/// The A-label of a configured domain, worked out once per thread: the configured domains
/// are few and fixed, and libidn2 would otherwise run for each of them on every RCPT.
const std::optional<std::string>& configured_a_label(const std::string& domain) {
    thread_local std::unordered_map<std::string, std::optional<std::string>> known;
    auto it = known.find(domain);
    if (it == known.end()) {
        it = known.emplace(domain, dns::to_a_label(domain)).first;
    }
    return it->second;
}

/// The local domain `domain` names, spelled as mailbox.domains spells it: the same name in
/// U-label or A-label form (bücher.example, xn--bcher-kva.example) is the same domain.
std::optional<std::string> local_domain(const config::config& cfg, const std::string& domain,
                                        const std::optional<std::string>& a_label) {
    for (const auto& configured : cfg.local_domains) {
        if (configured == domain) {
            return configured;
        }
    }
    if (!a_label) {
        return std::nullopt;
    }
    for (const auto& configured : cfg.local_domains) {
        if (configured_a_label(configured) == a_label) {
            return configured;
        }
    }
    return std::nullopt;
}

/// A user name that is safe as one path component.
bool usable_as_directory(std::string_view user) {
    return !user.empty() && user != "." && user != ".." &&
           user.find_first_of(std::string_view{"/\0", 2}) == std::string_view::npos;
}

} // namespace

std::string recipient::key_address() const {
    // Certificates name internationalised domains in their A-label form (RFC 5280 §7.5), and
    // the key store is keyed the same way, whichever form the address came in.
    return base_local_part + "@" + a_label.value_or(domain);
}

std::string_view base_local_part(std::string_view delimiters, std::string_view local_part) {
    if (delimiters.empty()) {
        return local_part;
    }
    return local_part.substr(0, local_part.find_first_of(delimiters, 1));
}

recipient normalise(const config::config& cfg, const lmtp::address& address) {
    recipient r;
    r.written = address;
    r.domain = util::ascii_lower(address.domain);
    if (r.domain.empty() && util::iequals(address.local_part, "postmaster") &&
        !cfg.local_domains.empty()) {
        r.domain = cfg.local_domains.front();
    }
    r.base_local_part =
        std::string(base_local_part(cfg.mailbox.recipient_delimiter, address.local_part));
    r.user =
        cfg.mailbox.lowercase_local_part ? util::ascii_lower(r.base_local_part) : r.base_local_part;
    r.a_label = dns::to_a_label(r.domain);
    if (auto local = local_domain(cfg, r.domain, r.a_label)) {
        r.domain = std::move(*local);
        if (usable_as_directory(r.user)) {
            r.maildir = expand_template(cfg.mailbox.maildir, r.user, r.domain);
        }
    }
    return r;
}

std::optional<recipient> resolve(const config::config& cfg, const lmtp::address& address) {
    auto r = normalise(cfg, address);
    if (!r.maildir) {
        return std::nullopt;
    }
    return r;
}

std::string expand_template(const std::string& pattern, const std::string& user,
                            const std::string& domain) {
    std::string out;
    out.reserve(pattern.size() + user.size() + domain.size());
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] != '%' || i + 1 == pattern.size()) {
            out += pattern[i];
            continue;
        }
        switch (pattern[++i]) {
        case 'u':
            out += user + "@" + domain;
            break;
        case 'n':
            out += user;
            break;
        case 'd':
            out += domain;
            break;
        default:
            out += pattern[i];
            break; // "%%"; config validation rejects other escapes
        }
    }
    return out;
}

std::vector<std::filesystem::path> existing_maildirs(const config::config& cfg) {
    // Turn the template into a glob(3) pattern: escapes become "*", and characters that are
    // special to glob are quoted so a path holding them matches only itself.
    std::string pattern;
    const auto& tmpl = cfg.mailbox.maildir;
    for (std::size_t i = 0; i < tmpl.size(); ++i) {
        char c = tmpl[i];
        if (c == '%' && i + 1 < tmpl.size()) {
            char e = tmpl[++i];
            if (e == '%') {
                pattern += '%';
            } else {
                pattern += '*';
            }
            continue;
        }
        if (c == '*' || c == '?' || c == '[' || c == '\\') {
            pattern += '\\';
        }
        pattern += c;
    }
    glob_t matches{};
    std::unique_ptr<glob_t, decltype(&globfree)> guard(&matches, &globfree);
    std::vector<std::filesystem::path> out;
    if (glob(pattern.c_str(), GLOB_ONLYDIR | GLOB_NOSORT, nullptr, &matches) != 0) {
        return out;
    }
    for (std::size_t i = 0; i < matches.gl_pathc; ++i) {
        std::error_code ec;
        std::filesystem::path dir(matches.gl_pathv[i]);
        if (std::filesystem::is_directory(dir / "tmp", ec)) {
            out.push_back(std::move(dir));
        }
    }
    return out;
}

} // namespace mailseal::recipient
