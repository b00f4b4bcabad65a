#include <sstream>

#include <mailseal/config/config.hpp>

#include "syntax.hpp"

namespace mailseal::config {
namespace {

/// Durations are written as "Ns" strings: exact for every value, and readable as seconds.
std::string seconds(std::chrono::seconds s) {
    return detail::toml_string(std::to_string(s.count()) + "s");
}

void describe_listener(std::ostringstream& out, const listener& l) {
    out << "\n[[listen]]\n";
    if (const auto* t = std::get_if<tcp_listener>(&l)) {
        out << "tcp = " << detail::toml_string(detail::format_tcp_address(*t)) << "\n";
        return;
    }
    const auto& u = std::get<unix_listener>(l);
    out << "unix = " << detail::toml_string(u.path.string()) << "\n"
        << "mode = " << detail::toml_octal(u.mode) << "\n"
        << "owner = " << detail::toml_string(u.owner) << "\n"
        << "group = " << detail::toml_string(u.group) << "\n";
}

} // namespace

std::string describe(const config& c) {
    std::ostringstream out;
    // An empty hostname stays empty: the daemon asks gethostname() at start-up, and printing
    // this machine's name here would pin it in a configuration copied elsewhere.
    out << "[server]\n"
        << "hostname = " << detail::toml_string(c.server.hostname) << "\n"
        << "workers = " << c.server.workers << "\n";

    for (const auto& l : c.listeners) {
        describe_listener(out, l);
    }

    const auto& m = c.mailbox;
    out << "\n[mailbox]\ndomains = [";
    for (std::size_t i = 0; i < c.local_domains.size(); ++i) {
        out << (i == 0 ? "" : ", ") << detail::toml_string(c.local_domains[i]);
    }
    out << "]\n"
        << "maildir = " << detail::toml_string(m.maildir) << "\n"
        << "lowercase_local_part = " << (m.lowercase_local_part ? "true" : "false") << "\n"
        << "recipient_delimiter = " << detail::toml_string(m.recipient_delimiter) << "\n"
        << "on_missing = " << detail::toml_string(to_string(m.on_missing)) << "\n"
        << "create_mode = " << detail::toml_octal(m.create_mode) << "\n"
        << "over_quota = " << detail::toml_string(to_string(m.over_quota)) << "\n";

    const auto& lim = c.limits;
    out << "\n[limits]\n"
        << "message_size = " << lim.message_size << "\n"
        << "recipients = " << lim.recipients << "\n"
        << "connections = " << lim.connections << "\n"
        << "command_line_length = " << lim.command_line_length << "\n"
        << "data_line_length = " << lim.data_line_length << "\n"
        << "idle_timeout = " << seconds(lim.idle_timeout) << "\n"
        << "command_timeout = " << seconds(lim.command_timeout) << "\n"
        << "data_timeout = " << seconds(lim.data_timeout) << "\n";

    out << "\n[log]\nlevel = " << detail::toml_string(to_string(c.logging.level)) << "\n";
    return out.str();
}

} // namespace mailseal::config
