// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <sstream>

#include <toml++/toml.h>

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

std::string string_array(const std::vector<std::string>& values) {
    std::string out = "[";
    for (std::size_t i = 0; i < values.size(); ++i) {
        out += (i == 0 ? "" : ", ") + detail::toml_string(values[i]);
    }
    return out + "]";
}

std::string flag(bool value) {
    return value ? "true" : "false";
}

void describe_dns(std::ostringstream& out, const dns_settings& d) {
    out << "\n[dns]\n"
        << "trust_anchor_file = " << detail::toml_string(d.trust_anchor_file.string()) << "\n"
        << "trust_anchors = " << string_array(d.trust_anchors) << "\n"
        << "forwarders = " << string_array(d.forwarders) << "\n"
        << "unbound_conf = " << detail::toml_string(d.unbound_conf.string()) << "\n"
        << "timeout = " << seconds(d.timeout) << "\n"
        << "lowercase_retry = " << flag(d.lowercase_retry) << "\n";
    for (const auto& stub : d.stub_zones) {
        out << "\n[[dns.stub_zone]]\n"
            << "zone = " << detail::toml_string(stub.zone) << "\n"
            << "servers = " << string_array(stub.servers) << "\n";
    }
}

void describe_keys(std::ostringstream& out, const key_settings& k) {
    out << "\n[keys]\n"
        << "local_store = " << detail::toml_string(k.local_store.string()) << "\n"
        << "smime_ca_file = " << detail::toml_string(k.smime_ca_file.string()) << "\n"
        << "accept_expired_dane_ee = " << flag(k.accept_expired_dane_ee) << "\n"
        << "preference = " << detail::toml_string(to_string(k.preference)) << "\n"
        << "cache_entries = " << k.cache_entries << "\n";
}

/// A TOML array of format names.
std::string formats_text(const std::vector<seal_format>& formats) {
    std::string out = "[";
    for (std::size_t i = 0; i < formats.size(); ++i) {
        out += (i == 0 ? "" : ", ") + detail::toml_string(to_string(formats[i]));
    }
    return out + "]";
}

void describe_seal(std::ostream& out, const seal_settings& s) {
    out << "\n[seal]\n"
        << "on_no_key = " << detail::toml_string(to_string(s.defaults.on_no_key)) << "\n"
        << "passthrough = " << detail::toml_string(to_string(s.defaults.passthrough)) << "\n"
        << "formats = " << formats_text(s.defaults.formats) << "\n"
        << "cipher = " << detail::toml_string(to_string(s.defaults.smime.cipher)) << "\n"
        << "rsa_padding = " << detail::toml_string(to_string(s.defaults.smime.padding)) << "\n"
        << "openpgp_cipher = " << detail::toml_string(to_string(s.defaults.openpgp.cipher)) << "\n"
        << "headers = " << detail::toml_string(to_string(s.defaults.headers)) << "\n"
        << "protected_subject = " << detail::toml_string(s.protected_subject) << "\n";
    for (const auto& r : s.rules) {
        out << "\n[[seal.policy]]\nmatch = " << detail::toml_string(r.match) << "\n";
        if (r.on_no_key) {
            out << "on_no_key = " << detail::toml_string(to_string(*r.on_no_key)) << "\n";
        }
        if (r.passthrough) {
            out << "passthrough = " << detail::toml_string(to_string(*r.passthrough)) << "\n";
        }
        if (r.cipher) {
            out << "cipher = " << detail::toml_string(to_string(*r.cipher)) << "\n";
        }
        if (r.padding) {
            out << "rsa_padding = " << detail::toml_string(to_string(*r.padding)) << "\n";
        }
        if (r.headers) {
            out << "headers = " << detail::toml_string(to_string(*r.headers)) << "\n";
        }
        if (r.formats) {
            out << "formats = " << formats_text(*r.formats) << "\n";
        }
        if (r.openpgp_cipher) {
            out << "openpgp_cipher = " << detail::toml_string(to_string(*r.openpgp_cipher)) << "\n";
        }
    }
}

} // namespace

std::string endpoint_text(const listener& l) {
    if (const auto* u = std::get_if<unix_listener>(&l)) {
        return u->path.string();
    }
    return detail::format_tcp_address(std::get<tcp_listener>(l));
}

std::string describe(const config& c) {
    std::ostringstream out;
    // An empty hostname stays empty: the daemon asks gethostname() at start-up, and printing
    // this machine's name here would pin it in a configuration copied elsewhere.
    out << "[server]\n"
        << "hostname = " << detail::toml_string(c.server.hostname) << "\n"
        << "workers = " << c.server.workers << "\n"
        << "user = " << detail::toml_string(c.server.user) << "\n"
        << "group = " << detail::toml_string(c.server.group) << "\n";

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
        << "over_quota = " << detail::toml_string(to_string(m.over_quota)) << "\n"
        << "page_cache = " << detail::toml_string(to_string(m.page_cache)) << "\n";

    out << "\n[store]\nkind = " << detail::toml_string(to_string(c.store.kind)) << "\n";
    if (c.store.next_hop) {
        out << "next_hop = " << detail::toml_string(endpoint_text(*c.store.next_hop)) << "\n";
    }
    out << "timeout = " << seconds(c.store.timeout) << "\n"
        << "data_done_timeout = " << seconds(c.store.data_done_timeout) << "\n"
        << "idle_connections = " << c.store.idle_connections << "\n";

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

    describe_dns(out, c.dns);
    describe_keys(out, c.keys);
    describe_seal(out, c.seal);
    std::string metrics_listen = c.metrics.listen ? endpoint_text(*c.metrics.listen) : "";
    out << "\n[metrics]\nlisten = " << detail::toml_string(metrics_listen) << "\n";

    out << "\n[log]\nlevel = " << detail::toml_string(to_string(c.logging.level)) << "\n"
        << "format = " << detail::toml_string(to_string(c.logging.format)) << "\n"
        << "output = " << detail::toml_string(to_string(c.logging.output)) << "\n";
    return out.str();
}

std::string describe_json(const config& c) {
    // The same settings as describe(), through the TOML it writes: one description to keep.
    std::string text = describe(c);
    toml::table table = toml::parse(std::string_view(text), std::string_view("effective"));
    std::ostringstream out;
    out << toml::json_formatter(table);
    return out.str();
}

namespace {

enum class client_issue { gcm, oaep, protect };

/// What the clients make of S/MIME copies sealed this way, one text per issue.
std::vector<std::pair<client_issue, std::string>> issues_of(const std::vector<seal_format>& formats,
                                                            seal::smime::content_cipher cipher,
                                                            seal::smime::rsa_padding padding,
                                                            header_mode headers) {
    std::vector<std::pair<client_issue, std::string>> out;
    if (std::find(formats.begin(), formats.end(), seal_format::smime) == formats.end()) {
        return out;
    }
    using seal::smime::content_cipher;
    if (cipher == content_cipher::aes_256_gcm || cipher == content_cipher::aes_128_gcm) {
        out.emplace_back(client_issue::gcm,
                         "cipher = \"" + std::string(seal::smime::to_string(cipher)) +
                             "\": Thunderbird shows such S/MIME copies as a blank body with no "
                             "error and mutt as an unsupported attachment; only OpenSSL-based "
                             "clients open them");
    }
    if (padding == seal::smime::rsa_padding::oaep) {
        out.emplace_back(client_issue::oaep,
                         "rsa_padding = \"oaep\": gpgsm fails on such S/MIME copies with a "
                         "misleading \"No secret key\" (mutt with gpgsm too); Thunderbird and "
                         "OpenSSL-based clients open them");
    }
    if (headers == header_mode::protect) {
        out.emplace_back(client_issue::protect,
                         "headers = \"protect\": Thunderbird keeps showing the Subject of S/MIME "
                         "copies as the outer placeholder (it reads protected headers only in "
                         "OpenPGP mail)");
    }
    return out;
}

} // namespace

std::vector<std::string> client_warnings(const config& c) {
    std::vector<std::string> out;
    const auto& d = c.seal.defaults;
    auto inherited = issues_of(d.formats, d.smime.cipher, d.smime.padding, d.headers);
    for (const auto& [issue, text] : inherited) {
        out.push_back("[seal]: " + text);
    }
    for (const auto& rule : c.seal.rules) {
        auto at = rule.match.find('@');
        auto policy = at == std::string::npos
                          ? c.seal.policy_for("", rule.match)
                          : c.seal.policy_for(rule.match.substr(0, at), rule.match.substr(at + 1));
        // The rule's recipients get what is in effect for them: named here unless it is only
        // what [seal] gives everyone (warned about above).
        for (const auto& [issue, text] :
             issues_of(policy.formats, policy.smime.cipher, policy.smime.padding, policy.headers)) {
            bool set_here = rule.formats.has_value() ||
                            (issue == client_issue::gcm && rule.cipher.has_value()) ||
                            (issue == client_issue::oaep && rule.padding.has_value()) ||
                            (issue == client_issue::protect && rule.headers.has_value());
            // A plain loop: clang 14 cannot capture a structured binding in a lambda.
            bool from_seal = false;
            for (const auto& given : inherited) {
                from_seal = from_seal || given.first == issue;
            }
            if (set_here || !from_seal) {
                out.push_back("[[seal.policy]] match = \"" + rule.match + "\": " + text);
            }
        }
    }
    return out;
}

} // namespace mailseal::config
