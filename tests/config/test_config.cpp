// SPDX-License-Identifier: Apache-2.0
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include <mailseal/config/config.hpp>

namespace cfg = mailseal::config;
namespace smime = mailseal::seal::smime;
namespace openpgp = mailseal::seal::openpgp;

namespace {

/// The two required settings, appended to cases about other keys. It starts with a blank line
/// and comes after the case's own lines, so it moves no position the case expects.
const std::string required = R"(
[[listen]]
unix = "/run/mailseal.sock"

[mailbox]
domains = ["example.org"]
)";

/// A valid [[listen]] for cases that write their own [mailbox].
const std::string one_listener = R"([[listen]]
unix = "/run/mailseal.sock"
)";

std::string load_error(const std::string& doc) {
    auto result = cfg::load_string(doc, "cfg.toml");
    if (const auto* e = std::get_if<cfg::error>(&result)) {
        return e->str();
    }
    return "(no error)";
}

cfg::config load_ok(const std::string& doc) {
    auto result = cfg::load_string(doc, "cfg.toml");
    if (const auto* e = std::get_if<cfg::error>(&result)) {
        ADD_FAILURE() << "unexpected error: " << e->str();
        return {};
    }
    return std::get<cfg::config>(result);
}

/// The configuration `required` stands for, with every other setting at its default.
cfg::config minimal() {
    cfg::config c;
    c.listeners.push_back(cfg::unix_listener{"/run/mailseal.sock", 0660, "", ""});
    c.local_domains = {"example.org"};
    return c;
}

struct bad_case {
    std::string name;
    std::string doc;
    std::string want;
};

std::vector<bad_case> bad_cases() {
    // A 108-byte socket path: one more than sockaddr_un.sun_path can hold with its NUL.
    const std::string long_socket = "/run/" + std::string(103, 's');
    const std::string long_label = std::string(64, 'a') + ".org";
    const std::string long_domain = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                    std::string(63, 'c') + "." + std::string(63, 'd') + ".org";
    return {
        // Unknown keys, at every level.
        {"unknown_top_level", "lisen = 1\n" + required, "cfg.toml:1:1: lisen: unknown key"},
        {"unknown_in_server", "[server]\nworker = 4\n" + required,
         "cfg.toml:2:1: server.worker: unknown key"},
        {"unknown_in_limits", "[limits]\nrecipnts = 100\n" + required,
         "cfg.toml:2:1: limits.recipnts: unknown key"},
        {"unknown_in_log", "[log]\nlevl = \"info\"\n" + required,
         "cfg.toml:2:1: log.levl: unknown key"},
        {"unknown_in_listen", "[[listen]]\nunix = \"/run/m.sock\"\nmod = 0o600\n",
         "cfg.toml:3:1: listen[0].mod: unknown key"},
        {"unknown_in_second_listen",
         one_listener +
             "[[listen]]\ntcp = \"127.0.0.1:24\"\nport = 24\n[mailbox]\ndomains = [\"a.org\"]\n",
         "cfg.toml:5:1: listen[1].port: unknown key"},
        {"unknown_in_mailbox",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\ndomain = \"b.org\"\n",
         "cfg.toml:5:1: mailbox.domain: unknown key"},
        {"unknown_subtable", "[server.extra]\nx = 1\n" + required,
         "cfg.toml:1:9: server.extra: unknown key"},
        {"unknown_dotted_key", "limits.recipnts = 100\n" + required,
         "cfg.toml:1:8: limits.recipnts: unknown key"},
        {"first_error_in_file_order", "[server]\nworkers = 0\n[limits]\nrecipnts = 1\n" + required,
         "cfg.toml:2:11: server.workers: must be between 1 and 256, got 0"},

        // Wrong types, one per kind of key.
        {"table_is_integer", "server = 5\n" + required,
         "cfg.toml:1:10: server: expected a table, got an integer"},
        {"integer_is_string", "[server]\nworkers = \"4\"\n" + required,
         "cfg.toml:2:11: server.workers: expected an integer, got a string"},
        {"integer_is_float", "[limits]\nrecipients = 100.0\n" + required,
         "cfg.toml:2:14: limits.recipients: expected an integer, got a floating-point number"},
        {"string_is_integer", "[server]\nhostname = 1\n" + required,
         "cfg.toml:2:12: server.hostname: expected a string, got an integer"},
        {"string_is_date", "[server]\nhostname = 1979-05-27\n" + required,
         "cfg.toml:2:12: server.hostname: expected a string, got a date"},
        {"boolean_is_string",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\nlowercase_local_part = \"yes\"\n",
         "cfg.toml:5:24: mailbox.lowercase_local_part: expected a boolean, got a string"},
        {"choice_is_integer", "[log]\nlevel = 1\n" + required,
         "cfg.toml:2:9: log.level: expected a string, got an integer"},
        {"size_is_boolean", "[limits]\nmessage_size = true\n" + required,
         "cfg.toml:2:16: limits.message_size: expected an integer or a string, got a boolean"},
        {"duration_is_float", "[limits]\nidle_timeout = 1.5\n" + required,
         "cfg.toml:2:16: limits.idle_timeout: expected an integer or a string, got a "
         "floating-point number"},
        {"mode_is_string", "[[listen]]\nunix = \"/run/m.sock\"\nmode = \"0660\"\n",
         "cfg.toml:3:8: listen[0].mode: expected an integer, got a string"},
        {"listen_is_table", "[listen]\nunix = \"/run/m.sock\"\n[mailbox]\ndomains = [\"a.org\"]\n",
         "cfg.toml:1:1: listen: expected an array of tables ([[listen]]), got a table"},
        {"listen_entry_is_integer", "listen = [1]\n[mailbox]\ndomains = [\"a.org\"]\n",
         "cfg.toml:1:11: listen[0]: expected a table, got an integer"},
        {"socket_path_is_array", "[[listen]]\nunix = [\"/run/m.sock\"]\n",
         "cfg.toml:2:8: listen[0].unix: expected a string, got an array"},
        {"domains_is_string", one_listener + "[mailbox]\ndomains = \"a.org\"\n",
         "cfg.toml:4:11: mailbox.domains: expected an array of strings, got a string"},
        {"domain_is_integer", one_listener + "[mailbox]\ndomains = [\"a.org\", 2]\n",
         "cfg.toml:4:21: mailbox.domains[1]: expected a string, got an integer"},

        // Ranges, at both ends where there are two.
        {"workers_zero", "[server]\nworkers = 0\n" + required,
         "cfg.toml:2:11: server.workers: must be between 1 and 256, got 0"},
        {"workers_too_many", "[server]\nworkers = 257\n" + required,
         "cfg.toml:2:11: server.workers: must be between 1 and 256, got 257"},
        {"recipients_below_rfc", "[limits]\nrecipients = 99\n" + required,
         "cfg.toml:2:14: limits.recipients: must be at least 100 (RFC 5321 §4.5.3.1.8), got 99"},
        {"recipients_negative", "[limits]\nrecipients = -1\n" + required,
         "cfg.toml:2:14: limits.recipients: must be at least 100 (RFC 5321 §4.5.3.1.8), got -1"},
        {"connections_zero", "[limits]\nconnections = 0\n" + required,
         "cfg.toml:2:15: limits.connections: must be between 1 and 100000, got 0"},
        {"connections_too_many", "[limits]\nconnections = 100001\n" + required,
         "cfg.toml:2:15: limits.connections: must be between 1 and 100000, got 100001"},
        {"command_line_too_short", "[limits]\ncommand_line_length = 511\n" + required,
         "cfg.toml:2:23: limits.command_line_length: must be between 512 (RFC 5321 §4.5.3.1.4) "
         "and 65536, got 511"},
        {"command_line_too_long", "[limits]\ncommand_line_length = 65537\n" + required,
         "cfg.toml:2:23: limits.command_line_length: must be between 512 (RFC 5321 §4.5.3.1.4) "
         "and 65536, got 65537"},
        {"data_line_too_short", "[limits]\ndata_line_length = 999\n" + required,
         "cfg.toml:2:20: limits.data_line_length: must be between 1000 (RFC 5321 §4.5.3.1.6) "
         "and 1048576, got 999"},
        {"data_line_too_long", "[limits]\ndata_line_length = 1048577\n" + required,
         "cfg.toml:2:20: limits.data_line_length: must be between 1000 (RFC 5321 §4.5.3.1.6) "
         "and 1048576, got 1048577"},
        {"message_size_too_small", "[limits]\nmessage_size = 65535\n" + required,
         "cfg.toml:2:16: limits.message_size: must be at least 64K (65536 bytes), got 65535"},
        {"message_size_negative", "[limits]\nmessage_size = -1\n" + required,
         "cfg.toml:2:16: limits.message_size: must be at least 64K (65536 bytes), got -1"},
        {"message_size_string_too_small", "[limits]\nmessage_size = \"63K\"\n" + required,
         "cfg.toml:2:16: limits.message_size: must be at least 64K (65536 bytes), got \"63K\""},
        {"message_size_beyond_int64", "[limits]\nmessage_size = \"8589934592G\"\n" + required,
         "cfg.toml:2:16: limits.message_size: must be at most 9223372036854775807, got "
         "\"8589934592G\""},
        {"message_size_digits_overflow",
         "[limits]\nmessage_size = \"99999999999999999999\"\n" + required,
         "cfg.toml:2:16: limits.message_size: must be at most 9223372036854775807, got "
         "\"99999999999999999999\""},
        {"idle_timeout_zero", "[limits]\nidle_timeout = 0\n" + required,
         "cfg.toml:2:16: limits.idle_timeout: must be between 1s and 1h, got 0"},
        {"idle_timeout_zero_string", "[limits]\nidle_timeout = \"0s\"\n" + required,
         "cfg.toml:2:16: limits.idle_timeout: must be between 1s and 1h, got \"0s\""},
        {"idle_timeout_too_long", "[limits]\nidle_timeout = 3601\n" + required,
         "cfg.toml:2:16: limits.idle_timeout: must be between 1s and 1h, got 3601"},
        {"command_timeout_minutes_too_long", "[limits]\ncommand_timeout = \"61m\"\n" + required,
         "cfg.toml:2:19: limits.command_timeout: must be between 1s and 1h, got \"61m\""},
        {"data_timeout_hours_too_long", "[limits]\ndata_timeout = \"2h\"\n" + required,
         "cfg.toml:2:16: limits.data_timeout: must be between 1s and 1h, got \"2h\""},
        {"data_timeout_overflow", "[limits]\ndata_timeout = \"9999999999999999999h\"\n" + required,
         "cfg.toml:2:16: limits.data_timeout: must be between 1s and 1h, got "
         "\"9999999999999999999h\""},
        {"socket_mode_too_large", "[[listen]]\nunix = \"/run/m.sock\"\nmode = 0o1000\n",
         "cfg.toml:3:8: listen[0].mode: must be between 0o0 and 0o777, got 0o1000"},
        {"socket_mode_decimal", "[[listen]]\nunix = \"/run/m.sock\"\nmode = 432\n",
         "cfg.toml:3:8: listen[0].mode: must be written in octal, such as 0o660, got 432"},
        {"socket_mode_hexadecimal", "[[listen]]\nunix = \"/run/m.sock\"\nmode = 0x1b0\n",
         "cfg.toml:3:8: listen[0].mode: must be written in octal, such as 0o660, got 432"},
        {"create_mode_too_large",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\ncreate_mode = 0o1777\n",
         "cfg.toml:5:15: mailbox.create_mode: must be between 0o0 and 0o777, got 0o1777"},
        {"create_mode_without_owner_rwx",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\ncreate_mode = 0o600\n",
         "cfg.toml:5:15: mailbox.create_mode: must include 0o700 so mailseal can create new/, "
         "cur/ and tmp/, got 0o600"},
        {"tcp_port_too_large", "[[listen]]\ntcp = \"127.0.0.1:65536\"\n",
         "cfg.toml:2:7: listen[0].tcp: must have a port between 0 and 65535, got "
         "\"127.0.0.1:65536\""},
        {"tcp_port_overflows", "[[listen]]\ntcp = \"[::1]:99999999999999999999\"\n",
         "cfg.toml:2:7: listen[0].tcp: must have a port between 0 and 65535, got "
         "\"[::1]:99999999999999999999\""},

        // Required keys.
        {"value_error_before_missing_keys", "\n[server]\nworkers = 0\n",
         "cfg.toml:3:11: server.workers: must be between 1 and 256, got 0"},
        {"empty_document", "",
         "cfg.toml:1:1: listen: missing; at least one [[listen]] table is "
         "required"},
        {"missing_listen", "[mailbox]\ndomains = [\"a.org\"]\n",
         "cfg.toml:1:1: listen: missing; at least one [[listen]] table is required"},
        {"empty_listen", "listen = []\n[mailbox]\ndomains = [\"a.org\"]\n",
         "cfg.toml:1:10: listen: at least one [[listen]] table is required, got []"},
        {"missing_mailbox", one_listener,
         "cfg.toml:1:1: mailbox.domains: missing: list the domains Postfix routes to mailseal (its "
         "virtual_mailbox_domains), e.g. domains = [\"example.org\"]"},
        {"missing_domains", one_listener + "\n[mailbox]\nmaildir = \"/var/vmail/%d/%n\"\n",
         "cfg.toml:4:1: mailbox.domains: missing: list the domains Postfix routes to mailseal (its "
         "virtual_mailbox_domains), e.g. domains = [\"example.org\"]"},
        {"empty_domains", one_listener + "[mailbox]\ndomains = []\n",
         "cfg.toml:4:11: mailbox.domains: at least one domain is required, got []"},

        // Listeners.
        {"listen_unix_and_tcp", "[[listen]]\nunix = \"/run/m.sock\"\ntcp = \"127.0.0.1:24\"\n",
         "cfg.toml:3:7: listen[0]: needs exactly one of unix or tcp, got both"},
        {"listen_tcp_and_unix", "[[listen]]\ntcp = \"127.0.0.1:24\"\nunix = \"/run/m.sock\"\n",
         "cfg.toml:3:8: listen[0]: needs exactly one of unix or tcp, got both"},
        {"listen_neither", "\n[[listen]]\nmode = 0o600\n[mailbox]\ndomains = [\"a.org\"]\n",
         "cfg.toml:2:1: listen[0]: needs exactly one of unix or tcp, got neither"},
        {"mode_with_tcp", "[[listen]]\ntcp = \"127.0.0.1:24\"\nmode = 0o600\n",
         "cfg.toml:3:8: listen[0].mode: only allowed with unix, not with tcp"},
        {"owner_with_tcp", "[[listen]]\ntcp = \"127.0.0.1:24\"\nowner = \"postfix\"\n",
         "cfg.toml:3:9: listen[0].owner: only allowed with unix, not with tcp"},
        {"group_with_tcp", "[[listen]]\ntcp = \"127.0.0.1:24\"\ngroup = \"postfix\"\n",
         "cfg.toml:3:9: listen[0].group: only allowed with unix, not with tcp"},
        {"tcp_host_name", "[[listen]]\ntcp = \"localhost:24\"\n",
         "cfg.toml:2:7: listen[0].tcp: must be a numeric \"IPv4:port\" or \"[IPv6]:port\", got "
         "\"localhost:24\""},
        {"tcp_without_port", "[[listen]]\ntcp = \"127.0.0.1\"\n",
         "cfg.toml:2:7: listen[0].tcp: must be a numeric \"IPv4:port\" or \"[IPv6]:port\", got "
         "\"127.0.0.1\""},
        {"tcp_empty_port", "[[listen]]\ntcp = \"127.0.0.1:\"\n",
         "cfg.toml:2:7: listen[0].tcp: must be a numeric \"IPv4:port\" or \"[IPv6]:port\", got "
         "\"127.0.0.1:\""},
        {"tcp_negative_port", "[[listen]]\ntcp = \"127.0.0.1:-1\"\n",
         "cfg.toml:2:7: listen[0].tcp: must be a numeric \"IPv4:port\" or \"[IPv6]:port\", got "
         "\"127.0.0.1:-1\""},
        {"tcp_bad_octet", "[[listen]]\ntcp = \"1.2.3.256:24\"\n",
         "cfg.toml:2:7: listen[0].tcp: must be a numeric \"IPv4:port\" or \"[IPv6]:port\", got "
         "\"1.2.3.256:24\""},
        {"tcp_ipv6_without_brackets", "[[listen]]\ntcp = \"::1:24\"\n",
         "cfg.toml:2:7: listen[0].tcp: must be a numeric \"IPv4:port\" or \"[IPv6]:port\", got "
         "\"::1:24\""},
        {"tcp_ipv6_without_colon", "[[listen]]\ntcp = \"[::1]24\"\n",
         "cfg.toml:2:7: listen[0].tcp: must be a numeric \"IPv4:port\" or \"[IPv6]:port\", got "
         "\"[::1]24\""},
        {"tcp_ipv4_in_brackets", "[[listen]]\ntcp = \"[127.0.0.1]:24\"\n",
         "cfg.toml:2:7: listen[0].tcp: must be a numeric \"IPv4:port\" or \"[IPv6]:port\", got "
         "\"[127.0.0.1]:24\""},
        {"unix_relative_path", "[[listen]]\nunix = \"mailseal.sock\"\n",
         "cfg.toml:2:8: listen[0].unix: must be an absolute path, got \"mailseal.sock\""},
        {"unix_empty_path", "[[listen]]\nunix = \"\"\n",
         "cfg.toml:2:8: listen[0].unix: must be an absolute path, got \"\""},
        {"unix_path_too_long", "[[listen]]\nunix = \"" + long_socket + "\"\n",
         "cfg.toml:2:8: listen[0].unix: must be at most 107 bytes long (the size of "
         "sockaddr_un.sun_path), got \"" +
             long_socket + "\""},
        {"unix_path_with_nul", "[[listen]]\nunix = \"/run/a\\u0000b\"\n",
         "cfg.toml:2:8: listen[0].unix: must not contain a NUL character, got \"/run/a\\u0000b\""},

        // Mailbox settings.
        {"maildir_relative",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\nmaildir = \"vmail/%d/%n\"\n",
         "cfg.toml:5:11: mailbox.maildir: must be an absolute path, got \"vmail/%d/%n\""},
        {"maildir_unknown_escape",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\nmaildir = \"/var/vmail/%x/%n\"\n",
         "cfg.toml:5:11: mailbox.maildir: has an unknown escape \"%x\" (use %u, %n, %d or %%), "
         "got \"/var/vmail/%x/%n\""},
        {"maildir_utf8_escape",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\nmaildir = \"/var/vmail/%é/%n\"\n",
         "cfg.toml:5:11: mailbox.maildir: has an unknown escape \"%é\" (use %u, %n, %d or %%), "
         "got \"/var/vmail/%é/%n\""},
        {"maildir_lone_percent",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\nmaildir = \"/var/vmail/%n/%\"\n",
         "cfg.toml:5:11: mailbox.maildir: ends with a lone '%' (write %% for a percent sign), "
         "got \"/var/vmail/%n/%\""},
        {"maildir_shared_by_domain",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\nmaildir = \"/var/vmail/%d/Maildir\"\n",
         "cfg.toml:5:11: mailbox.maildir: must contain %n or %u, or all recipients would share "
         "one Maildir, got \"/var/vmail/%d/Maildir\""},
        {"maildir_escaped_percent_n",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\nmaildir = \"/var/vmail/%%n\"\n",
         "cfg.toml:5:11: mailbox.maildir: must contain %n or %u, or all recipients would share "
         "one Maildir, got \"/var/vmail/%%n\""},
        {"domain_bad_character", one_listener + "[mailbox]\ndomains = [\"exa_mple.org\"]\n",
         "cfg.toml:4:12: mailbox.domains[0]: must be a domain name: label \"exa_mple\" contains "
         "'_', got \"exa_mple.org\""},
        {"domain_empty_label", one_listener + "[mailbox]\ndomains = [\"a.org\", \"a..org\"]\n",
         "cfg.toml:4:21: mailbox.domains[1]: must be a domain name: has an empty label, got "
         "\"a..org\""},
        {"domain_trailing_dot", one_listener + "[mailbox]\ndomains = [\"a.org.\"]\n",
         "cfg.toml:4:12: mailbox.domains[0]: must be a domain name: has an empty label, got "
         "\"a.org.\""},
        {"domain_empty", one_listener + "[mailbox]\ndomains = [\"\"]\n",
         "cfg.toml:4:12: mailbox.domains[0]: must be a domain name: has an empty label, got "
         "\"\""},
        {"domain_leading_hyphen", one_listener + "[mailbox]\ndomains = [\"-a.org\"]\n",
         "cfg.toml:4:12: mailbox.domains[0]: must be a domain name: label \"-a\" begins or ends "
         "with '-', got \"-a.org\""},
        {"domain_long_label", one_listener + "[mailbox]\ndomains = [\"" + long_label + "\"]\n",
         "cfg.toml:4:12: mailbox.domains[0]: must be a domain name: label \"" +
             long_label.substr(0, 64) + "\" is longer than 63 octets, got \"" + long_label + "\""},
        {"domain_too_long", one_listener + "[mailbox]\ndomains = [\"" + long_domain + "\"]\n",
         "cfg.toml:4:12: mailbox.domains[0]: must be a domain name: is longer than 255 octets, "
         "got \"" +
             long_domain + "\""},
        {"domain_address_literal", one_listener + "[mailbox]\ndomains = [\"[192.0.2.1]\"]\n",
         "cfg.toml:4:12: mailbox.domains[0]: must be a domain name: label \"[192\" contains '[', "
         "got \"[192.0.2.1]\""},
        {"domain_error_shows_original_case",
         one_listener + "[mailbox]\ndomains = [\"Exa_mple.ORG\"]\n",
         "cfg.toml:4:12: mailbox.domains[0]: must be a domain name: label \"exa_mple\" contains "
         "'_', got \"Exa_mple.ORG\""},
        {"hostname_with_space", "[server]\nhostname = \"mx example\"\n" + required,
         "cfg.toml:2:12: server.hostname: must be a host name: label \"mx example\" contains ' ', "
         "got \"mx example\""},
        {"hostname_with_crlf", "[server]\nhostname = \"mx\\r\\nX\"\n" + required,
         "cfg.toml:2:12: server.hostname: must be a host name: label \"mx\\r\\nX\" contains a "
         "control character, got \"mx\\r\\nX\""},
        {"hostname_utf8", "[server]\nhostname = \"bücher.example\"\n" + required,
         "cfg.toml:2:12: server.hostname: must be a host name: label \"bücher\" contains "
         "non-ASCII characters, got \"bücher.example\""},
        {"delimiter_at",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\nrecipient_delimiter = \"+@\"\n",
         "cfg.toml:5:23: mailbox.recipient_delimiter: must not contain '@' or '/', got \"+@\""},
        {"delimiter_slash",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\nrecipient_delimiter = \"/\"\n",
         "cfg.toml:5:23: mailbox.recipient_delimiter: must not contain '@' or '/', got \"/\""},
        {"delimiter_tab",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\nrecipient_delimiter = \"\\t\"\n",
         "cfg.toml:5:23: mailbox.recipient_delimiter: must contain only visible ASCII "
         "characters, got \"\\t\""},
        {"delimiter_utf8",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\nrecipient_delimiter = \"§\"\n",
         "cfg.toml:5:23: mailbox.recipient_delimiter: must contain only visible ASCII "
         "characters, got \"§\""},
        {"on_missing_unknown",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\non_missing = \"drop\"\n",
         "cfg.toml:5:14: mailbox.on_missing: must be one of \"create\", \"refuse\", got \"drop\""},
        {"over_quota_unknown",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\nover_quota = \"bounce\"\n",
         "cfg.toml:5:14: mailbox.over_quota: must be one of \"temporary\", \"permanent\", got "
         "\"bounce\""},
        {"page_cache_unknown",
         one_listener + "[mailbox]\ndomains = [\"a.org\"]\npage_cache = \"flush\"\n",
         "cfg.toml:5:14: mailbox.page_cache: must be one of \"drop\", \"keep\", got "
         "\"flush\""},
        {"log_level_unknown", "[log]\nlevel = \"verbose\"\n" + required,
         "cfg.toml:2:9: log.level: must be one of \"debug\", \"info\", \"warning\", \"error\", "
         "got \"verbose\""},
        {"log_level_wrong_case", "[log]\nlevel = \"INFO\"\n" + required,
         "cfg.toml:2:9: log.level: must be one of \"debug\", \"info\", \"warning\", \"error\", "
         "got \"INFO\""},

        // Size and duration strings.
        {"size_two_letter_unit", "[limits]\nmessage_size = \"50MB\"\n" + required,
         "cfg.toml:2:16: limits.message_size: must be a number of bytes with an optional K, M "
         "or G suffix, got \"50MB\""},
        {"size_lowercase_unit", "[limits]\nmessage_size = \"50m\"\n" + required,
         "cfg.toml:2:16: limits.message_size: must be a number of bytes with an optional K, M "
         "or G suffix, got \"50m\""},
        {"size_fraction", "[limits]\nmessage_size = \"1.5M\"\n" + required,
         "cfg.toml:2:16: limits.message_size: must be a number of bytes with an optional K, M "
         "or G suffix, got \"1.5M\""},
        {"size_unit_only", "[limits]\nmessage_size = \"M\"\n" + required,
         "cfg.toml:2:16: limits.message_size: must be a number of bytes with an optional K, M "
         "or G suffix, got \"M\""},
        {"size_empty", "[limits]\nmessage_size = \"\"\n" + required,
         "cfg.toml:2:16: limits.message_size: must be a number of bytes with an optional K, M "
         "or G suffix, got \"\""},
        {"size_space", "[limits]\nmessage_size = \"50 M\"\n" + required,
         "cfg.toml:2:16: limits.message_size: must be a number of bytes with an optional K, M "
         "or G suffix, got \"50 M\""},
        {"duration_words", "[limits]\nidle_timeout = \"5 min\"\n" + required,
         "cfg.toml:2:16: limits.idle_timeout: must be a number of seconds with an optional s, m "
         "or h suffix, got \"5 min\""},
        {"duration_size_unit", "[limits]\ncommand_timeout = \"5M\"\n" + required,
         "cfg.toml:2:19: limits.command_timeout: must be a number of seconds with an optional s, "
         "m or h suffix, got \"5M\""},
        {"duration_negative", "[limits]\ndata_timeout = \"-5s\"\n" + required,
         "cfg.toml:2:16: limits.data_timeout: must be a number of seconds with an optional s, m "
         "or h suffix, got \"-5s\""},

        // [dns] and [[dns.stub_zone]].
        {"unknown_in_dns", "[dns]\ntimout = 5\n" + required,
         "cfg.toml:2:1: dns.timout: unknown key"},
        {"unknown_in_stub_zone",
         "[[dns.stub_zone]]\nzone = \"test.\"\nservers = [\"127.0.0.1\"]\nserver = 1\n" + required,
         "cfg.toml:4:1: dns.stub_zone[0].server: unknown key"},
        {"dns_is_array", "dns = []\n" + required,
         "cfg.toml:1:7: dns: expected a table, got an array"},
        {"trust_anchor_file_empty", "[dns]\ntrust_anchor_file = \"\"\n" + required,
         "cfg.toml:2:21: dns.trust_anchor_file: must name a file of DS or DNSKEY records (without "
         "a trust anchor every answer is insecure), got \"\""},
        {"trust_anchor_file_relative", "[dns]\ntrust_anchor_file = \"root.key\"\n" + required,
         "cfg.toml:2:21: dns.trust_anchor_file: must be an absolute path, got \"root.key\""},
        {"trust_anchor_file_integer", "[dns]\ntrust_anchor_file = 1\n" + required,
         "cfg.toml:2:21: dns.trust_anchor_file: expected a string, got an integer"},
        {"trust_anchors_is_string", "[dns]\ntrust_anchors = \"test. DS 1 13 2 AB\"\n" + required,
         "cfg.toml:2:17: dns.trust_anchors: expected an array of strings, got a string"},
        {"trust_anchor_not_a_record",
         "[dns]\ntrust_anchors = [\"test. IN DS 1 13 2 AB\", \"test. IN A 192.0.2.1\"]\n" +
             required,
         "cfg.toml:2:43: dns.trust_anchors[1]: must be one DS or DNSKEY record in zone-file "
         "format, got \"test. IN A 192.0.2.1\""},
        {"trust_anchor_type_only", "[dns]\ntrust_anchors = [\"DS\"]\n" + required,
         "cfg.toml:2:18: dns.trust_anchors[0]: must be one DS or DNSKEY record in zone-file "
         "format, got \"DS\""},
        {"trust_anchor_in_comment",
         "[dns]\ntrust_anchors = [\"test. ; DS 1 13 2 AB\"]\n" + required,
         "cfg.toml:2:18: dns.trust_anchors[0]: must be one DS or DNSKEY record in zone-file "
         "format, got \"test. ; DS 1 13 2 AB\""},
        {"forwarder_host_name", "[dns]\nforwarders = [\"dns.example\"]\n" + required,
         "cfg.toml:2:15: dns.forwarders[0]: must be a numeric \"IP\" or \"IP@port\" (IPv6 "
         "without brackets), got \"dns.example\""},
        {"forwarder_ipv6_brackets", "[dns]\nforwarders = [\"[::1]@53\"]\n" + required,
         "cfg.toml:2:15: dns.forwarders[0]: must be a numeric \"IP\" or \"IP@port\" (IPv6 "
         "without brackets), got \"[::1]@53\""},
        {"forwarder_colon_port", "[dns]\nforwarders = [\"127.0.0.1:53\"]\n" + required,
         "cfg.toml:2:15: dns.forwarders[0]: must be a numeric \"IP\" or \"IP@port\" (IPv6 "
         "without brackets), got \"127.0.0.1:53\""},
        {"forwarder_port_zero", "[dns]\nforwarders = [\"127.0.0.1@0\"]\n" + required,
         "cfg.toml:2:15: dns.forwarders[0]: must have a port between 1 and 65535, got "
         "\"127.0.0.1@0\""},
        {"forwarder_port_too_large", "[dns]\nforwarders = [\"::1@65536\"]\n" + required,
         "cfg.toml:2:15: dns.forwarders[0]: must have a port between 1 and 65535, got "
         "\"::1@65536\""},
        {"forwarder_empty_port", "[dns]\nforwarders = [\"127.0.0.1@\"]\n" + required,
         "cfg.toml:2:15: dns.forwarders[0]: must be a numeric \"IP\" or \"IP@port\" (IPv6 "
         "without brackets), got \"127.0.0.1@\""},
        {"forwarder_is_integer", "[dns]\nforwarders = [53]\n" + required,
         "cfg.toml:2:15: dns.forwarders[0]: expected a string, got an integer"},
        {"unbound_conf_relative", "[dns]\nunbound_conf = \"unbound.conf\"\n" + required,
         "cfg.toml:2:16: dns.unbound_conf: must be an absolute path or \"\" for none, got "
         "\"unbound.conf\""},
        {"dns_timeout_zero", "[dns]\ntimeout = 0\n" + required,
         "cfg.toml:2:11: dns.timeout: must be between 1s and 5m, got 0"},
        {"dns_timeout_too_long", "[dns]\ntimeout = \"301s\"\n" + required,
         "cfg.toml:2:11: dns.timeout: must be between 1s and 5m, got \"301s\""},
        {"dns_timeout_hours", "[dns]\ntimeout = \"1h\"\n" + required,
         "cfg.toml:2:11: dns.timeout: must be between 1s and 5m, got \"1h\""},
        {"dns_timeout_words", "[dns]\ntimeout = \"ten seconds\"\n" + required,
         "cfg.toml:2:11: dns.timeout: must be a number of seconds with an optional s, m or h "
         "suffix, got \"ten seconds\""},
        {"lowercase_retry_is_string", "[dns]\nlowercase_retry = \"no\"\n" + required,
         "cfg.toml:2:19: dns.lowercase_retry: expected a boolean, got a string"},
        {"stub_zone_is_table", "[dns.stub_zone]\nzone = \"test.\"\n" + required,
         "cfg.toml:1:1: dns.stub_zone: expected an array of tables ([[dns.stub_zone]]), got a "
         "table"},
        {"stub_zone_entry_is_string", "[dns]\nstub_zone = [\"test.\"]\n" + required,
         "cfg.toml:2:14: dns.stub_zone[0]: expected a table, got a string"},
        {"stub_zone_without_dot",
         "[[dns.stub_zone]]\nzone = \"test\"\nservers = [\"127.0.0.1\"]\n" + required,
         "cfg.toml:2:8: dns.stub_zone[0].zone: must be a zone name ending in '.', got \"test\""},
        {"stub_zone_empty_label",
         "[[dns.stub_zone]]\nzone = \"a..test.\"\nservers = [\"127.0.0.1\"]\n" + required,
         "cfg.toml:2:8: dns.stub_zone[0].zone: must be a zone name: has an empty label, got "
         "\"a..test.\""},
        {"stub_zone_u_label",
         "[[dns.stub_zone]]\nzone = \"bücher.test.\"\nservers = [\"127.0.0.1\"]\n" + required,
         "cfg.toml:2:8: dns.stub_zone[0].zone: must be a zone name: label \"bücher\" contains "
         "non-ASCII characters, got \"bücher.test.\""},
        {"stub_zone_empty",
         "[[dns.stub_zone]]\nzone = \"\"\nservers = [\"127.0.0.1\"]\n" + required,
         "cfg.toml:2:8: dns.stub_zone[0].zone: must be a zone name ending in '.', got \"\""},
        {"stub_zone_twice",
         "[[dns.stub_zone]]\nzone = \"test.\"\nservers = [\"127.0.0.1\"]\n"
         "[[dns.stub_zone]]\nzone = \"TEST.\"\nservers = [\"127.0.0.2\"]\n" +
             required,
         "cfg.toml:5:8: dns.stub_zone[1].zone: is already a stub zone (dns.stub_zone[0]), got "
         "\"TEST.\""},
        {"stub_zone_bad_server",
         "[[dns.stub_zone]]\nzone = \"test.\"\nservers = [\"127.0.0.1@5300\", \"ns.test\"]\n" +
             required,
         "cfg.toml:3:30: dns.stub_zone[0].servers[1]: must be a numeric \"IP\" or \"IP@port\" "
         "(IPv6 without brackets), got \"ns.test\""},
        {"stub_zone_no_servers", "[[dns.stub_zone]]\nzone = \"test.\"\nservers = []\n" + required,
         "cfg.toml:3:11: dns.stub_zone[0].servers: at least one server is required, got []"},
        {"stub_zone_missing_servers", "\n[[dns.stub_zone]]\nzone = \"test.\"\n" + required,
         "cfg.toml:2:1: dns.stub_zone[0].servers: missing; a stub zone needs at least one "
         "server"},
        {"stub_zone_missing_zone", "\n[[dns.stub_zone]]\nservers = [\"127.0.0.1\"]\n" + required,
         "cfg.toml:2:1: dns.stub_zone[0].zone: missing; a stub zone needs its zone name"},

        // [keys].
        {"unknown_in_keys", "[keys]\npreferences = \"all\"\n" + required,
         "cfg.toml:2:1: keys.preferences: unknown key"},
        {"local_store_relative", "[keys]\nlocal_store = \"certs\"\n" + required,
         "cfg.toml:2:15: keys.local_store: must be an absolute path or \"\" for none, got "
         "\"certs\""},
        {"smime_ca_file_relative", "[keys]\nsmime_ca_file = \"ca.pem\"\n" + required,
         "cfg.toml:2:17: keys.smime_ca_file: must be an absolute path or \"\" for none, got "
         "\"ca.pem\""},
        {"accept_expired_is_integer", "[keys]\naccept_expired_dane_ee = 1\n" + required,
         "cfg.toml:2:26: keys.accept_expired_dane_ee: expected a boolean, got an integer"},
        {"preference_unknown", "[keys]\npreference = \"rsa-only\"\n" + required,
         "cfg.toml:2:14: keys.preference: must be one of \"rsa-only-if-any\", \"all\", got "
         "\"rsa-only\""},
        {"metrics_listen_bad", "[metrics]\nlisten = \"localhost:9180\"\n" + required,
         "cfg.toml:2:10: metrics.listen: must be a numeric \"IPv4:port\" or \"[IPv6]:port\" (or an "
         "absolute socket path), got \"localhost:9180\""},
        {"store_kind_unknown", "[store]\nkind = \"mbox\"\n" + required,
         "cfg.toml:2:8: store.kind: must be one of \"maildir\", \"lmtp\", got \"mbox\""},
        {"store_lmtp_without_next_hop", "[store]\nkind = \"lmtp\"\n" + required,
         "cfg.toml:1:1: store.next_hop: missing; kind = \"lmtp\" needs the next hop's LMTP socket "
         "or address"},
        {"store_next_hop_for_maildir", "[store]\nnext_hop = \"/run/dovecot/lmtp\"\n" + required,
         "cfg.toml:2:12: store.next_hop: is only used with kind = \"lmtp\", got "
         "\"/run/dovecot/lmtp\""},
        {"store_next_hop_name", "[store]\nkind = \"lmtp\"\nnext_hop = \"dovecot:24\"\n" + required,
         "cfg.toml:3:12: store.next_hop: must be a numeric \"IPv4:port\" or \"[IPv6]:port\" (or an "
         "absolute socket path), got \"dovecot:24\""},
        {"store_next_hop_port_zero",
         "[store]\nkind = \"lmtp\"\nnext_hop = \"127.0.0.1:0\"\n" + required,
         "cfg.toml:3:12: store.next_hop: needs a port other than 0, got \"127.0.0.1:0\""},
        {"store_next_hop_is_our_listener",
         "[store]\nkind = \"lmtp\"\nnext_hop = \"/run/mailseal.sock\"\n" + required,
         "cfg.toml:3:12: store.next_hop: is one of mailseal's own [[listen]] addresses, got "
         "\"/run/mailseal.sock\""},
        {"store_data_done_timeout_range", "[store]\ndata_done_timeout = \"10m\"\n" + required,
         "cfg.toml:2:21: store.data_done_timeout: must be between 1s and 9m, got \"10m\""},
        {"store_idle_connections_range", "[store]\nidle_connections = 5000\n" + required,
         "cfg.toml:2:20: store.idle_connections: must be between 0 and 1000, got 5000"},
        {"log_output_unknown", "[log]\noutput = \"file\"\n" + required,
         "cfg.toml:2:10: log.output: must be one of \"stderr\", \"syslog\", got \"file\""},
        {"group_without_user", "[server]\ngroup = \"mail\"\n" + required,
         "cfg.toml:2:9: server.group: needs server.user, got \"mail\""},
        {"on_no_key_unknown", "[seal]\non_no_key = \"drop\"\n" + required,
         "cfg.toml:2:13: seal.on_no_key: must be one of \"plain\", \"defer\", \"reject\", got "
         "\"drop\""},
        {"passthrough_unknown", "[seal]\npassthrough = \"always\"\n" + required,
         "cfg.toml:2:15: seal.passthrough: must be one of \"verified\", \"never\", got "
         "\"always\""},
        {"cipher_unknown", "[seal]\ncipher = \"des-ede3-cbc\"\n" + required,
         "cfg.toml:2:10: seal.cipher: must be one of \"aes-256-cbc\", \"aes-128-cbc\", "
         "\"aes-256-gcm\", \"aes-128-gcm\", got \"des-ede3-cbc\""},
        {"formats_unknown", "[seal]\nformats = [\"smime\", \"pem\"]\n" + required,
         "cfg.toml:2:21: seal.formats[1]: must be \"smime\" or \"openpgp\", got \"pem\""},
        {"formats_twice", "[seal]\nformats = [\"openpgp\", \"openpgp\"]\n" + required,
         "cfg.toml:2:23: seal.formats[1]: is listed twice, got \"openpgp\""},
        {"formats_empty", "[seal]\nformats = []\n" + required,
         "cfg.toml:2:11: seal.formats: at least one format is required, got []"},
        {"formats_not_array", "[seal]\nformats = \"smime\"\n" + required,
         "cfg.toml:2:11: seal.formats: expected an array of strings, got a string"},
        {"policy_formats_unknown",
         "[[seal.policy]]\nmatch = \"example.org\"\nformats = [\"x\"]\n" + required,
         "cfg.toml:3:12: seal.policy[0].formats[0]: must be \"smime\" or \"openpgp\", got \"x\""},
        {"openpgp_cipher_unknown", "[seal]\nopenpgp_cipher = \"cast5\"\n" + required,
         "cfg.toml:2:18: seal.openpgp_cipher: must be one of \"aes-256\", \"aes-192\", "
         "\"aes-128\", got \"cast5\""},
        {"protected_subject_empty", "[seal]\nprotected_subject = \"\"\n" + required,
         "cfg.toml:2:21: seal.protected_subject: must be non-empty printable text (it becomes a "
         "header field), got \"\""},
        {"protected_subject_newline", "[seal]\nprotected_subject = \"a\\r\\nBcc: x\"\n" + required,
         "cfg.toml:2:21: seal.protected_subject: must be non-empty printable text (it becomes a "
         "header field), got \"a\\r\\nBcc: x\""},
        {"policy_not_array", "[seal]\npolicy = \"x\"\n" + required,
         "cfg.toml:2:10: seal.policy: expected an array of tables ([[seal.policy]]), got a "
         "string"},
        {"policy_without_match", "[[seal.policy]]\non_no_key = \"defer\"\n" + required,
         "cfg.toml:1:1: seal.policy[0].match: missing; a policy names a domain or address"},
        {"policy_bad_domain", "[[seal.policy]]\nmatch = \"ceo@-bad\"\n" + required,
         "cfg.toml:2:9: seal.policy[0].match: must be a domain or user@domain: label \"-bad\" "
         "begins or ends with '-', got \"ceo@-bad\""},
        {"policy_empty_user", "[[seal.policy]]\nmatch = \"@example.org\"\n" + required,
         "cfg.toml:2:9: seal.policy[0].match: must be a domain or user@domain with a non-empty "
         "user, got \"@example.org\""},
        {"policy_duplicate",
         "[[seal.policy]]\nmatch = \"Example.org\"\n[[seal.policy]]\nmatch = \"example.ORG\"\n" +
             required,
         "cfg.toml:4:9: seal.policy[1].match: already has a policy (seal.policy[0]), got "
         "\"example.ORG\""},
        {"policy_unknown_key",
         "[[seal.policy]]\nmatch = \"example.org\"\npadding = \"oaep\"\n" + required,
         "cfg.toml:3:1: seal.policy[0].padding: unknown key"},
        {"policy_bad_value",
         "[[seal.policy]]\nmatch = \"example.org\"\nheaders = \"hide\"\n" + required,
         "cfg.toml:3:11: seal.policy[0].headers: must be one of \"keep\", \"protect\", got "
         "\"hide\""},

        // TOML syntax errors: position and text come from toml++.
        {"syntax_missing_value", "[server]\nworkers = \n" + required,
         "cfg.toml:2:11: Error while parsing key-value pair: expected value, saw '\\n'"},
        {"syntax_duplicate_key", "[server]\nworkers = 1\nworkers = 2\n" + required,
         "cfg.toml:3:11: Error while parsing key-value pair: cannot redefine existing integer "
         "'workers'"},
    };
}

class bad_config : public testing::TestWithParam<bad_case> {};

TEST_P(bad_config, reports_exact_error) {
    const auto& c = GetParam();
    auto got = load_error(c.doc);
    EXPECT_EQ(got, c.want) << "document:\n" << c.doc << "\ngot  " << got << "\nwant " << c.want;
}

INSTANTIATE_TEST_SUITE_P(table, bad_config, testing::ValuesIn(bad_cases()),
                         [](const testing::TestParamInfo<bad_case>& p) { return p.param.name; });

TEST(load_string, minimal_config_has_defaults) {
    auto got = load_ok(required);
    EXPECT_TRUE(got == minimal()) << "got:\n" << cfg::describe(got);
    EXPECT_EQ(got.server.hostname, "");
    EXPECT_EQ(got.server.workers, 4u);
    EXPECT_EQ(got.mailbox.maildir, "/var/vmail/%d/%n/Maildir");
    EXPECT_EQ(got.limits.message_size, 50u * 1024 * 1024);
    EXPECT_EQ(got.limits.idle_timeout, std::chrono::seconds(300));
    EXPECT_EQ(got.logging.level, cfg::log_level::info);
    EXPECT_EQ(got.dns.trust_anchor_file, "/usr/share/dns/root.key");
    EXPECT_TRUE(got.dns.trust_anchors.empty());
    EXPECT_TRUE(got.dns.forwarders.empty());
    EXPECT_TRUE(got.dns.stub_zones.empty());
    EXPECT_EQ(got.dns.unbound_conf, "");
    EXPECT_EQ(got.dns.timeout, std::chrono::seconds(10));
    EXPECT_FALSE(got.dns.lowercase_retry);
    EXPECT_EQ(got.keys.local_store, "");
    EXPECT_EQ(got.keys.smime_ca_file, "");
    EXPECT_TRUE(got.keys.accept_expired_dane_ee);
    EXPECT_EQ(got.keys.preference, cfg::key_preference::rsa_only_if_any);
}

TEST(load_string, reads_dns_and_keys) {
    auto got = load_ok(R"(
[dns]
trust_anchor_file = "/etc/mailseal/anchors.key"
trust_anchors = ["test. IN DS 33841 13 2 F036F64F", "corp.example. 3600 IN DNSKEY 257 3 13 AbC="]
forwarders = ["127.0.0.1", "::1@5353", "192.0.2.53@53"]
unbound_conf = "/etc/mailseal/unbound.conf"
timeout = "5m"
lowercase_retry = true

[[dns.stub_zone]]
zone = "Test."
servers = ["127.0.0.1@5300", "::1@5300"]

[[dns.stub_zone]]
zone = "."
servers = ["192.0.2.1@65535"]

[keys]
local_store = "/var/lib/mailseal/certs"
smime_ca_file = "/etc/ssl/certs/ca-certificates.crt"
accept_expired_dane_ee = false
preference = "all"
)" + required);
    const auto& d = got.dns;
    EXPECT_EQ(d.trust_anchor_file, "/etc/mailseal/anchors.key");
    EXPECT_EQ(d.trust_anchors,
              (std::vector<std::string>{"test. IN DS 33841 13 2 F036F64F",
                                        "corp.example. 3600 IN DNSKEY 257 3 13 AbC="}));
    EXPECT_EQ(d.forwarders, (std::vector<std::string>{"127.0.0.1", "::1@5353", "192.0.2.53@53"}));
    EXPECT_EQ(d.unbound_conf, "/etc/mailseal/unbound.conf");
    EXPECT_EQ(d.timeout, std::chrono::seconds(300));
    EXPECT_TRUE(d.lowercase_retry);
    ASSERT_EQ(d.stub_zones.size(), 2u);
    EXPECT_TRUE((d.stub_zones[0] == cfg::stub_zone{"test.", {"127.0.0.1@5300", "::1@5300"}}))
        << "zone names are stored lowercase, got " << d.stub_zones[0].zone;
    EXPECT_TRUE((d.stub_zones[1] == cfg::stub_zone{".", {"192.0.2.1@65535"}}));
    EXPECT_EQ(got.keys.local_store, "/var/lib/mailseal/certs");
    EXPECT_EQ(got.keys.smime_ca_file, "/etc/ssl/certs/ca-certificates.crt");
    EXPECT_FALSE(got.keys.accept_expired_dane_ee);
    EXPECT_EQ(got.keys.preference, cfg::key_preference::all);
}

TEST(load_string, seal_policy_precedence) {
    auto got = load_ok(R"(
[mailbox]
domains = ["example.org", "example.net"]
maildir = "/var/vmail/%d/%n/Maildir"

[seal]
on_no_key = "plain"
cipher = "aes-256-cbc"

[[seal.policy]]
match = "CEO@Example.ORG"
cipher = "aes-256-gcm"
formats = ["openpgp"]
passthrough = "never"

[[seal.policy]]
match = "example.org"
on_no_key = "defer"
headers = "protect"
openpgp_cipher = "aes-128"

[[listen]]
unix = "/run/mailseal.sock"
)");
    using cfg::header_mode;
    using cfg::no_key_action;
    using mailseal::seal::smime::content_cipher;
    struct row {
        const char* user;
        const char* domain;
        no_key_action on_no_key;
        content_cipher cipher;
        header_mode headers;
    };
    // The address's rule over the domain's over [seal]; the user as the mailbox names it.
    for (const auto& r : {
             row{"ceo", "example.org", no_key_action::defer, content_cipher::aes_256_gcm,
                 header_mode::protect},
             row{"alice", "example.org", no_key_action::defer, content_cipher::aes_256_cbc,
                 header_mode::protect},
             row{"ceo", "example.net", no_key_action::plain, content_cipher::aes_256_cbc,
                 header_mode::keep},
         }) {
        auto p = got.seal.policy_for(r.user, r.domain);
        EXPECT_EQ(p.on_no_key, r.on_no_key) << r.user << "@" << r.domain;
        EXPECT_EQ(p.smime.cipher, r.cipher) << r.user << "@" << r.domain;
        EXPECT_EQ(p.headers, r.headers) << r.user << "@" << r.domain;
        EXPECT_EQ(p.smime.padding, mailseal::seal::smime::rsa_padding::pkcs1)
            << r.user << "@" << r.domain;
    }
    EXPECT_EQ(got.seal.policy_for("ceo", "example.org").passthrough, cfg::passthrough_mode::never);
    EXPECT_EQ(got.seal.policy_for("alice", "example.org").passthrough,
              cfg::passthrough_mode::verified);
    using mailseal::seal::openpgp::symmetric_cipher;
    EXPECT_EQ(got.seal.policy_for("ceo", "example.org").formats,
              std::vector{cfg::seal_format::openpgp});
    EXPECT_EQ(got.seal.policy_for("ceo", "example.org").openpgp.cipher, symmetric_cipher::aes_128);
    EXPECT_EQ(got.seal.policy_for("alice", "example.org").formats,
              (std::vector{cfg::seal_format::smime, cfg::seal_format::openpgp}))
        << "S/MIME first by default";
    EXPECT_EQ(got.seal.policy_for("ceo", "example.net").openpgp.cipher, symmetric_cipher::aes_256);
}

TEST(load_string, dns_timeout_boundaries) {
    EXPECT_EQ(load_ok("[dns]\ntimeout = 1\n" + required).dns.timeout, std::chrono::seconds(1));
    EXPECT_EQ(load_ok("[dns]\ntimeout = \"1s\"\n" + required).dns.timeout, std::chrono::seconds(1));
    EXPECT_EQ(load_ok("[dns]\ntimeout = 300\n" + required).dns.timeout, std::chrono::seconds(300));
    EXPECT_EQ(load_ok("[dns]\ntimeout = \"5m\"\n" + required).dns.timeout,
              std::chrono::seconds(300));
}

TEST(load_string, accepts_every_boundary_value) {
    auto got = load_ok(R"(
[server]
hostname = ""
workers = 256

[[listen]]
unix = "/run/mailseal.sock"
mode = 0o0

[[listen]]
unix = "/run/mailseal2.sock"
mode = 0o777

[[listen]]
tcp = "0.0.0.0:0"

[[listen]]
tcp = "[::]:65535"

[mailbox]
domains = ["example.org"]
create_mode = 0o700

[limits]
message_size = 65536
recipients = 100
connections = 100000
command_line_length = 65536
data_line_length = 1048576
idle_timeout = "1h"
command_timeout = 1
data_timeout = "60m"
)");
    EXPECT_EQ(got.server.workers, 256u);
    ASSERT_EQ(got.listeners.size(), 4u);
    EXPECT_EQ(std::get<cfg::unix_listener>(got.listeners[0]).mode, 0u);
    EXPECT_EQ(std::get<cfg::unix_listener>(got.listeners[1]).mode, 0777u);
    EXPECT_TRUE((std::get<cfg::tcp_listener>(got.listeners[2]) == cfg::tcp_listener{"0.0.0.0", 0}));
    EXPECT_TRUE((std::get<cfg::tcp_listener>(got.listeners[3]) == cfg::tcp_listener{"::", 65535}));
    EXPECT_EQ(got.limits.message_size, 65536u);
    EXPECT_EQ(got.limits.recipients, 100u);
    EXPECT_EQ(got.limits.connections, 100000u);
    EXPECT_EQ(got.limits.command_line_length, 65536u);
    EXPECT_EQ(got.limits.data_line_length, 1048576u);
    EXPECT_EQ(got.limits.idle_timeout, std::chrono::seconds(3600));
    EXPECT_EQ(got.limits.command_timeout, std::chrono::seconds(1));
    EXPECT_EQ(got.limits.data_timeout, std::chrono::seconds(3600));
}

struct value_case {
    std::string name;
    std::string limits_line;
    std::uint64_t want_size;
    std::int64_t want_idle_seconds;
};

TEST(load_string, parses_size_and_duration_strings) {
    const std::vector<value_case> cases = {
        {"plain", "message_size = 70000\nidle_timeout = 45", 70000, 45},
        {"digits_string", "message_size = \"70000\"\nidle_timeout = \"45\"", 70000, 45},
        {"kilo_seconds", "message_size = \"64K\"\nidle_timeout = \"30s\"", 65536, 30},
        {"mega_minutes", "message_size = \"50M\"\nidle_timeout = \"5m\"", 52428800, 300},
        {"giga_hours", "message_size = \"1G\"\nidle_timeout = \"1h\"", 1073741824, 3600},
        {"largest_size", "message_size = \"8589934591G\"\nidle_timeout = \"3600s\"",
         9223372035781033984u, 3600},
    };
    for (const auto& c : cases) {
        auto got = load_ok("[limits]\n" + c.limits_line + "\n" + required);
        EXPECT_EQ(got.limits.message_size, c.want_size) << c.name;
        EXPECT_EQ(got.limits.idle_timeout.count(), c.want_idle_seconds) << c.name;
    }
}

TEST(load_string, normalises_domains_and_reads_listeners) {
    auto got = load_ok(R"(
[[listen]]
tcp = "[2001:db8::1]:2424"

[[listen]]
unix = "/var/spool/postfix/private/mailseal"
owner = "postfix"
group = "mail"

[mailbox]
domains = ["Example.ORG", "bücher.example", "xn--caf-dma.example", "localhost"]
)");
    std::vector<std::string> want_domains = {"example.org", "bücher.example", "xn--caf-dma.example",
                                             "localhost"};
    EXPECT_EQ(got.local_domains, want_domains);
    ASSERT_EQ(got.listeners.size(), 2u);
    EXPECT_TRUE(
        (std::get<cfg::tcp_listener>(got.listeners[0]) == cfg::tcp_listener{"2001:db8::1", 2424}));
    const auto& u = std::get<cfg::unix_listener>(got.listeners[1]);
    EXPECT_EQ(u.path, "/var/spool/postfix/private/mailseal");
    EXPECT_EQ(u.mode, 0660u) << "the default socket mode";
    EXPECT_EQ(u.owner, "postfix");
    EXPECT_EQ(u.group, "mail");
}

TEST(load_file, example_file_loads) {
    auto result = cfg::load_file(EXAMPLE_CONFIG);
    if (const auto* e = std::get_if<cfg::error>(&result)) {
        FAIL() << e->str();
    }
    const auto& got = std::get<cfg::config>(result);
    ASSERT_EQ(got.listeners.size(), 1u);
    cfg::unix_listener want_listener{"/var/spool/postfix/private/mailseal", 0660, "postfix",
                                     "postfix"};
    EXPECT_TRUE(std::get<cfg::unix_listener>(got.listeners[0]) == want_listener);
    EXPECT_EQ(got.local_domains, std::vector<std::string>{"example.org"});
    EXPECT_EQ(got.server.hostname, "mx.example.org");

    // Apart from the listener, domains and hostname, the example shows the defaults.
    cfg::config want;
    want.server.hostname = "mx.example.org";
    want.listeners = {want_listener};
    want.local_domains = {"example.org"};
    EXPECT_TRUE(got == want) << "got:\n" << cfg::describe(got) << "want:\n" << cfg::describe(want);
}

TEST(load_file, missing_file_has_no_position) {
    auto result = cfg::load_file("/nonexistent/mailseal.toml");
    ASSERT_TRUE(std::holds_alternative<cfg::error>(result));
    EXPECT_EQ(std::get<cfg::error>(result).str(),
              "/nonexistent/mailseal.toml: cannot read: No such file or directory");
}

TEST(load_file, directory_is_unreadable) {
    auto dir = std::filesystem::temp_directory_path();
    auto result = cfg::load_file(dir);
    ASSERT_TRUE(std::holds_alternative<cfg::error>(result));
    EXPECT_EQ(std::get<cfg::error>(result).str(), dir.string() + ": cannot read: Is a directory");
}

TEST(load_file, reports_the_path_in_errors) {
    auto path = std::filesystem::temp_directory_path() /
                ("mailseal-test-config-" + std::to_string(::getpid()) + ".toml");
    std::ofstream(path) << "[server]\nworkers = 0\n";
    auto result = cfg::load_file(path);
    std::filesystem::remove(path);
    ASSERT_TRUE(std::holds_alternative<cfg::error>(result));
    EXPECT_EQ(std::get<cfg::error>(result).str(),
              path.string() + ":2:11: server.workers: must be between 1 and 256, got 0");
}

TEST(describe, writes_every_key_of_the_defaults) {
    const std::string want = R"([server]
hostname = ""
workers = 4
user = ""
group = ""

[[listen]]
unix = "/run/mailseal.sock"
mode = 0o660
owner = ""
group = ""

[mailbox]
domains = ["example.org"]
maildir = "/var/vmail/%d/%n/Maildir"
lowercase_local_part = true
recipient_delimiter = "+"
on_missing = "create"
create_mode = 0o700
over_quota = "temporary"
page_cache = "drop"

[store]
kind = "maildir"
timeout = "60s"
data_done_timeout = "300s"
idle_connections = 8

[limits]
message_size = 52428800
recipients = 100
connections = 100
command_line_length = 512
data_line_length = 1000
idle_timeout = "300s"
command_timeout = "300s"
data_timeout = "300s"

[dns]
trust_anchor_file = "/usr/share/dns/root.key"
trust_anchors = []
forwarders = []
unbound_conf = ""
timeout = "10s"
lowercase_retry = false

[keys]
local_store = ""
smime_ca_file = ""
accept_expired_dane_ee = true
preference = "rsa-only-if-any"
cache_entries = 1000

[seal]
on_no_key = "plain"
passthrough = "verified"
formats = ["smime", "openpgp"]
cipher = "aes-256-cbc"
rsa_padding = "pkcs1"
openpgp_cipher = "aes-256"
headers = "keep"
protected_subject = "[...]"

[metrics]
listen = ""

[log]
level = "info"
format = "logfmt"
output = "stderr"
)";
    auto got = cfg::describe(minimal());
    EXPECT_EQ(got, want) << "got:\n" << got << "want:\n" << want;
}

/// A configuration with every setting away from its default, and strings that need escaping.
cfg::config unusual() {
    cfg::config c;
    c.server.hostname = "mx1.example.net";
    c.server.workers = 17;
    c.server.user = "vmail";
    c.server.group = "mail";
    c.listeners.push_back(cfg::tcp_listener{"::1", 0});
    c.listeners.push_back(cfg::unix_listener{"/run/mail \"seal\"\\.sock", 0600, "mail", "nogroup"});
    c.listeners.push_back(cfg::tcp_listener{"192.0.2.7", 2424});
    c.local_domains = {"example.net", "bücher.example"};
    c.mailbox.maildir = "/srv/mail/%d/%%/%u";
    c.mailbox.lowercase_local_part = false;
    c.mailbox.recipient_delimiter = "+-\"\\";
    c.mailbox.on_missing = cfg::missing_maildir::refuse;
    c.mailbox.create_mode = 0750;
    c.mailbox.over_quota = cfg::quota_reply::permanent;
    c.mailbox.page_cache = cfg::page_cache_policy::keep;
    c.store.kind = cfg::store_kind::lmtp;
    c.store.next_hop = cfg::unix_listener{"/run/dovecot/lmtp", 0600, {}, {}};
    c.store.timeout = std::chrono::seconds(42);
    c.store.data_done_timeout = std::chrono::seconds(539);
    c.store.idle_connections = 0;
    c.limits.message_size = 123456789;
    c.limits.recipients = 250;
    c.limits.connections = 7;
    c.limits.command_line_length = 2048;
    c.limits.data_line_length = 4096;
    c.limits.idle_timeout = std::chrono::seconds(61);
    c.limits.command_timeout = std::chrono::seconds(1);
    c.limits.data_timeout = std::chrono::seconds(3600);
    c.logging.level = cfg::log_level::debug;
    c.logging.format = cfg::log_format::json;
    c.logging.output = cfg::log_output::syslog;
    c.dns.trust_anchor_file = "/etc/mailseal/\"anchors\".key";
    c.dns.trust_anchors = {"test. IN DS 33841 13 2 F036F64F", "x. IN DNSKEY 257 3 13 A\\B="};
    c.dns.forwarders = {"127.0.0.1@5353", "::1"};
    c.dns.stub_zones = {{"test.", {"127.0.0.1@5300"}}, {"corp.example.", {"192.0.2.1", "::1@53"}}};
    c.dns.unbound_conf = "/etc/mailseal/unbound.conf";
    c.dns.timeout = std::chrono::seconds(299);
    c.dns.lowercase_retry = true;
    c.keys.local_store = "/var/lib/mailseal/certs";
    c.keys.smime_ca_file = "/etc/ssl/ca.pem";
    c.keys.accept_expired_dane_ee = false;
    c.keys.preference = cfg::key_preference::all;
    c.seal.defaults.on_no_key = cfg::no_key_action::defer;
    c.seal.defaults.passthrough = cfg::passthrough_mode::never;
    c.seal.defaults.headers = cfg::header_mode::protect;
    c.seal.defaults.smime = {smime::content_cipher::aes_128_gcm, smime::rsa_padding::oaep};
    c.seal.defaults.openpgp = {openpgp::symmetric_cipher::aes_128};
    c.seal.defaults.formats = {cfg::seal_format::openpgp};
    c.seal.protected_subject = "(encrypted \"message\")";
    c.metrics.listen = cfg::tcp_listener{"127.0.0.1", 9180};
    c.seal.rules = {{"example.net", cfg::no_key_action::reject, cfg::passthrough_mode::verified,
                     std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt},
                    {"ceo@example.net", std::nullopt, std::nullopt,
                     smime::content_cipher::aes_256_cbc, smime::rsa_padding::pkcs1,
                     cfg::header_mode::keep,
                     std::vector{cfg::seal_format::openpgp, cfg::seal_format::smime},
                     openpgp::symmetric_cipher::aes_192}};
    return c;
}

TEST(describe, round_trips) {
    auto example = cfg::load_file(EXAMPLE_CONFIG);
    ASSERT_TRUE(std::holds_alternative<cfg::config>(example));
    const std::vector<std::pair<std::string, cfg::config>> cases = {
        {"minimal", minimal()},
        {"unusual", unusual()},
        {"example", std::get<cfg::config>(example)},
    };
    for (const auto& [name, want] : cases) {
        auto text = cfg::describe(want);
        auto got = cfg::load_string(text, "describe.toml");
        if (const auto* e = std::get_if<cfg::error>(&got)) {
            ADD_FAILURE() << name << ": describe() output does not load: " << e->str() << "\n"
                          << text;
            continue;
        }
        EXPECT_TRUE(std::get<cfg::config>(got) == want)
            << name << ": got\n"
            << cfg::describe(std::get<cfg::config>(got)) << "want\n"
            << text;
    }
}

TEST(example, documents_every_key) {
    std::ifstream in(EXAMPLE_CONFIG);
    std::stringstream example;
    example << in.rdbuf();
    // describe() writes every key; the unusual configuration has both kinds of listener.
    std::istringstream described(cfg::describe(unusual()));
    std::set<std::string> keys;
    for (std::string line; std::getline(described, line);) {
        auto eq = line.find(" = ");
        if (eq == std::string::npos) {
            continue;
        }
        auto key = line.substr(0, eq);
        keys.insert(key);
        bool set = example.str().find("\n" + key + " = ") != std::string::npos;
        bool shown = example.str().find("\n# " + key + " = ") != std::string::npos;
        bool explained = example.str().find("\n# " + key + ": ") != std::string::npos;
        EXPECT_TRUE(set || shown) << key << ": no example setting";
        EXPECT_TRUE(explained) << key << ": no \"# " << key << ": ...\" explanation";
    }
    // 4 in [server] (its group shares the name of [[listen]]'s), 5 in [[listen]], 8 in [mailbox],
    // 4 in [store] (its timeout shares the name of [dns]'s), 8 in [limits], 6 in [dns], 2 in
    // [[dns.stub_zone]], 5 in [keys], 8 in [seal] (whose 7 policy keys [[seal.policy]] repeats,
    // plus match), 1 in [metrics], 3 in [log].
    EXPECT_EQ(keys.size(), 54u) << "describe() wrote " << keys.size() << " distinct keys";
}

TEST(enums, to_string) {
    EXPECT_EQ(cfg::to_string(cfg::missing_maildir::create), "create");
    EXPECT_EQ(cfg::to_string(cfg::missing_maildir::refuse), "refuse");
    EXPECT_EQ(cfg::to_string(cfg::quota_reply::temporary), "temporary");
    EXPECT_EQ(cfg::to_string(cfg::page_cache_policy::drop), "drop");
    EXPECT_EQ(cfg::to_string(cfg::page_cache_policy::keep), "keep");
    EXPECT_EQ(cfg::to_string(cfg::quota_reply::permanent), "permanent");
    EXPECT_EQ(cfg::to_string(cfg::log_level::debug), "debug");
    EXPECT_EQ(cfg::to_string(cfg::log_level::info), "info");
    EXPECT_EQ(cfg::to_string(cfg::log_level::warning), "warning");
    EXPECT_EQ(cfg::to_string(cfg::log_level::error), "error");
    EXPECT_EQ(cfg::to_string(cfg::key_preference::rsa_only_if_any), "rsa-only-if-any");
    EXPECT_EQ(cfg::to_string(cfg::key_preference::all), "all");
}

TEST(error, str_omits_what_is_absent) {
    const std::vector<std::pair<cfg::error, std::string>> cases = {
        {{"f.toml", 3, 7, "limits.recipients", "too small"},
         "f.toml:3:7: limits.recipients: too small"},
        {{"f.toml", 3, 7, "", "syntax"}, "f.toml:3:7: syntax"},
        {{"f.toml", 0, 0, "", "cannot read: gone"}, "f.toml: cannot read: gone"},
        {{"f.toml", 0, 0, "log.level", "odd"}, "f.toml: log.level: odd"},
    };
    for (const auto& [e, want] : cases) {
        EXPECT_EQ(e.str(), want);
    }
}

} // namespace

TEST(idn, one_domain_in_either_form) {
    // A policy written in one form applies to recipients of the other.
    auto got = load_ok(one_listener +
                       "[mailbox]\ndomains = [\"b\xc3\xbc"
                       "cher.test\"]\n"
                       "[[seal.policy]]\nmatch = \"xn--bcher-kva.test\"\non_no_key = \"defer\"\n"
                       "[[seal.policy]]\nmatch = \"ceo@B\xc3\x9c"
                       "CHER.test\"\n"
                       "on_no_key = \"reject\"\n");
    EXPECT_EQ(got.seal
                  .policy_for("bob", "b\xc3\xbc"
                                     "cher.test")
                  .on_no_key,
              cfg::no_key_action::defer);
    EXPECT_EQ(got.seal.policy_for("bob", "xn--bcher-kva.test").on_no_key,
              cfg::no_key_action::defer);
    EXPECT_EQ(got.seal
                  .policy_for("ceo", "b\xc3\xbc"
                                     "cher.test")
                  .on_no_key,
              cfg::no_key_action::reject);
    EXPECT_EQ(got.seal.policy_for("bob", "example.org").on_no_key, cfg::no_key_action::plain);
    // Both forms of one name in mailbox.domains, or two policies for it, are refused.
    EXPECT_NE(load_error(one_listener + "[mailbox]\ndomains = [\"b\xc3\xbc"
                                        "cher.test\", "
                                        "\"xn--bcher-kva.test\"]\n")
                  .find("are the same domain"),
              std::string::npos);
    EXPECT_NE(load_error(one_listener + "[mailbox]\ndomains = [\"example.org\"]\n"
                                        "[[seal.policy]]\nmatch = \"b\xc3\xbc"
                                        "cher.test\"\n"
                                        "[[seal.policy]]\nmatch = \"xn--bcher-kva.test\"\n")
                  .find("already has a policy"),
              std::string::npos);
}
