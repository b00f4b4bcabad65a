#include <algorithm>
#include <cerrno>
#include <glob.h>
#include <memory>
#include <sys/stat.h>
#include <system_error>

#include <mailseal/delivery/mailbox.hpp>
#include <mailseal/log/log.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/errno_text.hpp>

namespace mailseal::delivery {
namespace {

bool is_local_domain(const config::config& cfg, const std::string& domain) {
    return std::find(cfg.local_domains.begin(), cfg.local_domains.end(), domain) !=
           cfg.local_domains.end();
}

/// A user name that is safe as one path component.
bool usable_as_directory(std::string_view user) {
    return !user.empty() && user != "." && user != ".." &&
           user.find_first_of(std::string_view{"/\0", 2}) == std::string_view::npos;
}

} // namespace

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

std::string_view base_local_part(const config::config& cfg, std::string_view local_part) {
    const auto& delimiters = cfg.mailbox.recipient_delimiter;
    if (delimiters.empty()) {
        return local_part;
    }
    return local_part.substr(0, local_part.find_first_of(delimiters, 1));
}

std::string recipient_domain(const config::config& cfg, const lmtp::address& recipient) {
    std::string domain = util::ascii_lower(recipient.domain);
    if (domain.empty() && util::iequals(recipient.local_part, "postmaster") &&
        !cfg.local_domains.empty()) {
        domain = cfg.local_domains.front();
    }
    return domain;
}

std::optional<mailbox> resolve(const config::config& cfg, const lmtp::address& recipient) {
    std::string domain = recipient_domain(cfg, recipient);
    if (!is_local_domain(cfg, domain)) {
        return std::nullopt;
    }
    std::string_view local = base_local_part(cfg, recipient.local_part);
    std::string user =
        cfg.mailbox.lowercase_local_part ? util::ascii_lower(local) : std::string(local);
    if (!usable_as_directory(user)) {
        return std::nullopt;
    }
    auto path = expand_template(cfg.mailbox.maildir, user, domain);
    return mailbox{std::move(user), std::move(domain), std::filesystem::path(std::move(path))};
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

bool verification_touches_filesystem(const config::config& cfg) {
    // Relaying, the next hop knows its users: it answers each RCPT itself.
    return cfg.store.kind == config::store_kind::maildir &&
           cfg.mailbox.on_missing == config::missing_maildir::refuse;
}

std::optional<lmtp::reply> verify_recipient(const config::config& cfg,
                                            const lmtp::address& recipient) {
    auto box = resolve(cfg, recipient);
    if (!box) {
        return lmtp::reply(lmtp::replies::unknown_recipient);
    }
    if (!verification_touches_filesystem(cfg)) {
        return std::nullopt;
    }
    struct stat st {};
    if (::stat(box->maildir.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            return std::nullopt;
        }
        return lmtp::reply(lmtp::replies::unknown_recipient);
    }
    if (errno == ENOENT || errno == ENOTDIR) {
        return lmtp::reply(lmtp::replies::unknown_recipient);
    }
    log::warning("mailbox-check-failed", {{"rcpt", "<" + recipient.str() + ">"},
                                          {"maildir", box->maildir.string()},
                                          {"error", util::errno_text(errno)}});
    return lmtp::reply(lmtp::replies::local_error);
}

} // namespace mailseal::delivery
