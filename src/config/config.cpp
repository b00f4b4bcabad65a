// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <array>
#include <cerrno>
#include <fcntl.h>
#include <limits>
#include <span>
#include <sys/un.h>
#include <system_error>
#include <tuple>
#include <unistd.h>

#include <toml++/toml.h>

#include <mailseal/config/config.hpp>
#include <mailseal/util/ascii.hpp>

#include "syntax.hpp"

namespace mailseal::config {

std::string_view to_string(missing_maildir m) {
    switch (m) {
    case missing_maildir::create:
        return "create";
    case missing_maildir::refuse:
        return "refuse";
    }
    return "unknown";
}

std::string_view to_string(page_cache_policy p) {
    switch (p) {
    case page_cache_policy::drop:
        return "drop";
    case page_cache_policy::keep:
        return "keep";
    }
    return "unknown";
}

std::string_view to_string(quota_reply q) {
    switch (q) {
    case quota_reply::temporary:
        return "temporary";
    case quota_reply::permanent:
        return "permanent";
    }
    return "unknown";
}

std::string_view to_string(log_level l) {
    switch (l) {
    case log_level::debug:
        return "debug";
    case log_level::info:
        return "info";
    case log_level::warning:
        return "warning";
    case log_level::error:
        return "error";
    }
    return "unknown";
}

std::string_view to_string(key_preference p) {
    switch (p) {
    case key_preference::rsa_only_if_any:
        return "rsa-only-if-any";
    case key_preference::all:
        return "all";
    }
    return "unknown";
}

std::string_view to_string(log_output o) {
    switch (o) {
    case log_output::standard_error:
        return "stderr";
    case log_output::syslog:
        return "syslog";
    }
    return "unknown";
}

std::string_view to_string(store_kind k) {
    switch (k) {
    case store_kind::maildir:
        return "maildir";
    case store_kind::lmtp:
        return "lmtp";
    }
    return "unknown";
}

std::string_view to_string(log_format f) {
    switch (f) {
    case log_format::logfmt:
        return "logfmt";
    case log_format::json:
        return "json";
    }
    return "unknown";
}

std::string_view to_string(no_key_action a) {
    switch (a) {
    case no_key_action::plain:
        return "plain";
    case no_key_action::defer:
        return "defer";
    case no_key_action::reject:
        return "reject";
    }
    return "unknown";
}

std::string_view to_string(header_mode h) {
    switch (h) {
    case header_mode::keep:
        return "keep";
    case header_mode::protect:
        return "protect";
    }
    return "unknown";
}

std::string_view to_string(passthrough_mode p) {
    switch (p) {
    case passthrough_mode::verified:
        return "verified";
    case passthrough_mode::never:
        return "never";
    }
    return "unknown";
}

std::string_view to_string(seal_format f) {
    switch (f) {
    case seal_format::smime:
        return "smime";
    case seal_format::openpgp:
        return "openpgp";
    }
    return "unknown";
}

seal_policy seal_settings::policy_for(std::string_view user, std::string_view domain) const {
    seal_policy out = defaults;
    auto apply = [&out](const seal_rule& r) {
        out.on_no_key = r.on_no_key.value_or(out.on_no_key);
        out.passthrough = r.passthrough.value_or(out.passthrough);
        out.smime.cipher = r.cipher.value_or(out.smime.cipher);
        out.smime.padding = r.padding.value_or(out.smime.padding);
        out.openpgp.cipher = r.openpgp_cipher.value_or(out.openpgp.cipher);
        out.formats = r.formats.value_or(out.formats);
        out.headers = r.headers.value_or(out.headers);
    };
    if (rules.empty()) {
        return out;
    }
    // Rules name domains in A-label form, whichever form the recipient's domain has.
    std::string key = detail::domain_key(domain);
    std::string address = std::string(user) + "@" + key;
    for (const auto& r : rules) {
        if (r.match == key) {
            apply(r);
        }
    }
    for (const auto& r : rules) {
        if (r.match == address) {
            apply(r);
        }
    }
    return out;
}

std::string error::str() const {
    std::string out = file;
    if (line != 0) {
        out += ":" + std::to_string(line) + ":" + std::to_string(column);
    }
    out += ": ";
    if (!key.empty()) {
        out += key + ": ";
    }
    return out + message;
}

namespace {

using namespace std::string_view_literals;

constexpr std::int64_t unbounded = std::numeric_limits<std::int64_t>::max();

/// An inclusive range and the words that state it in messages ("must be " + text).
struct int_range {
    std::int64_t lo;
    std::int64_t hi;
    std::string_view text;
};

// Keep each range next to its wording; tests check both ends of every one.
constexpr int_range workers_range{1, 256, "between 1 and 256"};
constexpr int_range mode_range{0, 0777, "between 0o0 and 0o777"};
constexpr int_range message_size_range{64 * 1024, unbounded, "at least 64K (65536 bytes)"};
// RFC 5321 §4.5.3.1.8: "The minimum total number of recipients that MUST be buffered is 100".
constexpr int_range recipients_range{100, unbounded, "at least 100 (RFC 5321 §4.5.3.1.8)"};
constexpr int_range connections_range{1, 100000, "between 1 and 100000"};
// RFC 5321 §4.5.3.1.4: "The maximum total length of a command line including the command word
// and the <CRLF> is 512 octets." A server may accept more, never less.
constexpr int_range command_line_range{512, 65536, "between 512 (RFC 5321 §4.5.3.1.4) and 65536"};
// RFC 5321 §4.5.3.1.6: "The maximum total length of a text line including the <CRLF> is 1000
// octets (not counting the leading dot duplicated for transparency)."
constexpr int_range data_line_range{1000, 1048576,
                                    "between 1000 (RFC 5321 §4.5.3.1.6) and 1048576"};
constexpr int_range timeout_range{1, 3600, "between 1s and 1h"};
// A lookup runs while the message is received, and its answer is awaited after the final dot,
// inside Postfix's lmtp_data_done_timeout (600s); a bogus answer alone can take over a second
// while unbound tries every server.
constexpr int_range dns_timeout_range{1, 300, "between 1s and 5m"};

constexpr std::array top_keys{"server"sv, "listen"sv, "mailbox"sv, "store"sv,   "limits"sv,
                              "dns"sv,    "keys"sv,   "seal"sv,    "metrics"sv, "log"sv};
constexpr std::array store_keys{"kind"sv, "next_hop"sv, "timeout"sv, "data_done_timeout"sv,
                                "idle_connections"sv};
constexpr int_range idle_connections_range{0, 1000, "between 0 and 1000"};
constexpr int_range cache_entries_range{0, 1000000, "between 0 and 1000000"};
// Below Postfix's lmtp_data_done_timeout (600s), which also covers key lookups and sealing.
constexpr int_range data_done_timeout_range{1, 540, "between 1s and 9m"};
constexpr std::array server_keys{"hostname"sv, "workers"sv, "user"sv, "group"sv};
constexpr std::array listen_keys{"unix"sv, "tcp"sv, "mode"sv, "owner"sv, "group"sv};
constexpr std::array mailbox_keys{
    "domains"sv,    "maildir"sv,     "lowercase_local_part"sv, "recipient_delimiter"sv,
    "on_missing"sv, "create_mode"sv, "over_quota"sv,           "page_cache"sv};
constexpr std::array limits_keys{"message_size"sv,        "recipients"sv,       "connections"sv,
                                 "command_line_length"sv, "data_line_length"sv, "idle_timeout"sv,
                                 "command_timeout"sv,     "data_timeout"sv};
constexpr std::array dns_keys{"trust_anchor_file"sv, "trust_anchors"sv, "forwarders"sv,
                              "stub_zone"sv,         "unbound_conf"sv,  "timeout"sv,
                              "lowercase_retry"sv};
constexpr std::array stub_zone_keys{"zone"sv, "servers"sv};
constexpr std::array keys_keys{"local_store"sv, "smime_ca_file"sv, "accept_expired_dane_ee"sv,
                               "preference"sv, "cache_entries"sv};
constexpr std::array log_keys{"level"sv, "format"sv, "output"sv};
constexpr std::array metrics_keys{"listen"sv};
constexpr std::array seal_keys{"on_no_key"sv, "passthrough"sv,       "formats"sv,
                               "cipher"sv,    "rsa_padding"sv,       "openpgp_cipher"sv,
                               "headers"sv,   "protected_subject"sv, "policy"sv};
constexpr std::array seal_rule_keys{"match"sv,  "on_no_key"sv,   "passthrough"sv,    "formats"sv,
                                    "cipher"sv, "rsa_padding"sv, "openpgp_cipher"sv, "headers"sv};

constexpr std::array missing_maildir_values{missing_maildir::create, missing_maildir::refuse};
constexpr std::array quota_reply_values{quota_reply::temporary, quota_reply::permanent};
constexpr std::array page_cache_values{page_cache_policy::drop, page_cache_policy::keep};
constexpr std::array log_format_values{log_format::logfmt, log_format::json};
constexpr std::array log_output_values{log_output::standard_error, log_output::syslog};
constexpr std::array store_kind_values{store_kind::maildir, store_kind::lmtp};
constexpr std::array log_level_values{log_level::debug, log_level::info, log_level::warning,
                                      log_level::error};
constexpr std::array key_preference_values{key_preference::rsa_only_if_any, key_preference::all};
constexpr std::array no_key_action_values{no_key_action::plain, no_key_action::defer,
                                          no_key_action::reject};
constexpr std::array passthrough_mode_values{passthrough_mode::verified, passthrough_mode::never};
constexpr std::array content_cipher_values{
    seal::smime::content_cipher::aes_256_cbc, seal::smime::content_cipher::aes_128_cbc,
    seal::smime::content_cipher::aes_256_gcm, seal::smime::content_cipher::aes_128_gcm};
constexpr std::array rsa_padding_values{seal::smime::rsa_padding::pkcs1,
                                        seal::smime::rsa_padding::oaep};
constexpr std::array header_mode_values{header_mode::keep, header_mode::protect};
constexpr std::array seal_format_values{seal_format::smime, seal_format::openpgp};
constexpr std::array openpgp_cipher_values{seal::openpgp::symmetric_cipher::aes_256,
                                           seal::openpgp::symmetric_cipher::aes_192,
                                           seal::openpgp::symmetric_cipher::aes_128};

/// The longest path a unix socket can bind to: sun_path less its terminating NUL.
constexpr std::size_t max_socket_path = sizeof(sockaddr_un{}.sun_path) - 1;

std::string_view type_name(toml::node_type t) {
    switch (t) {
    case toml::node_type::none:
        return "nothing";
    case toml::node_type::table:
        return "a table";
    case toml::node_type::array:
        return "an array";
    case toml::node_type::string:
        return "a string";
    case toml::node_type::integer:
        return "an integer";
    case toml::node_type::floating_point:
        return "a floating-point number";
    case toml::node_type::boolean:
        return "a boolean";
    case toml::node_type::date:
        return "a date";
    case toml::node_type::time:
        return "a time";
    case toml::node_type::date_time:
        return "a date-time";
    }
    return "an unknown type";
}

std::string join(std::string_view prefix, std::string_view name) {
    return prefix.empty() ? std::string(name) : std::string(prefix) + "." + std::string(name);
}

std::string indexed(std::string_view prefix, std::size_t i) {
    return std::string(prefix) + "[" + std::to_string(i) + "]";
}

/// A value as it reads in TOML, for the ", got ..." part of messages.
std::string literal(const toml::node& n) {
    if (const auto* s = n.as_string()) {
        return detail::toml_string(s->get());
    }
    if (const auto* i = n.as_integer()) {
        return std::to_string(i->get());
    }
    return std::string(type_name(n.type()));
}

/// Walks a parsed document against the format in examples/mailseal.toml. It records every
/// problem and keeps going with defaults, so the error reported is the first one in the file
/// whatever order the checks run in (toml++ tables iterate in key order, not file order).
/// Every position comes from toml++'s parser, which gives each node and key one (the root
/// table's is 1:1, even in an empty document).
/// What an absent mailbox.domains says: the fix, not only the fault.
constexpr std::string_view missing_domains =
    "missing: list the domains Postfix routes to mailseal (its virtual_mailbox_domains), e.g. "
    "domains = [\"example.org\"]";

class loader {
public:
    loader(std::string_view file, purpose use) : file_(file), use_(use) {}

    config load(const toml::table& root) {
        config c;
        check_keys(root, "", top_keys);
        if (const auto* t = table(root, "", "server")) {
            read_server(*t, c.server);
        }
        read_listeners(root, c.listeners);
        read_mailbox(root, c);
        if (const auto* t = table(root, "", "store")) {
            read_store(*t, c.store, c.listeners);
        }
        if (const auto* t = table(root, "", "limits")) {
            read_limits(*t, c.limits);
        }
        if (const auto* t = table(root, "", "dns")) {
            read_dns(*t, c.dns);
        }
        if (const auto* t = table(root, "", "keys")) {
            read_keys(*t, c.keys);
        }
        if (const auto* t = table(root, "", "seal")) {
            read_seal(*t, c);
        }
        if (const auto* t = table(root, "", "metrics")) {
            read_metrics(*t, c.metrics);
        }
        if (const auto* t = table(root, "", "log")) {
            check_keys(*t, "log", log_keys);
            read_choice(*t, "log", "level", log_level_values, c.logging.level);
            read_choice(*t, "log", "format", log_format_values, c.logging.format);
            read_choice(*t, "log", "output", log_output_values, c.logging.output);
        }
        return c;
    }

    /// Problems with values written in the file come first, in file order; a missing
    /// required key only after them, since its position (its table's) says little.
    std::optional<error> first_error() const {
        if (!errors_.empty()) {
            return *std::min_element(
                errors_.begin(), errors_.end(), [](const auto& a, const auto& b) {
                    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                });
        }
        if (!missing_.empty()) {
            return missing_.front();
        }
        return std::nullopt;
    }

private:
    void fail(const toml::source_region& at, std::string key, std::string message) {
        errors_.push_back(located(at, std::move(key), std::move(message)));
    }

    /// A required key is absent from `in`.
    void fail_missing(const toml::table& in, std::string key, std::string message) {
        missing_.push_back(located(in.source(), std::move(key), std::move(message)));
    }

    error located(const toml::source_region& at, std::string key, std::string message) const {
        return error{file_, at.begin.line, at.begin.column, std::move(key), std::move(message)};
    }

    void fail_type(const toml::node& n, std::string key, std::string_view expected) {
        fail(n.source(), std::move(key),
             "expected " + std::string(expected) + ", got " + std::string(type_name(n.type())));
    }

    void fail_value(const toml::node& n, std::string key, std::string_view problem) {
        fail(n.source(), std::move(key), std::string(problem) + ", got " + literal(n));
    }

    void check_keys(const toml::table& t, std::string_view prefix,
                    std::span<const std::string_view> known) {
        for (auto&& [k, v] : t) {
            if (std::find(known.begin(), known.end(), k.str()) == known.end()) {
                fail(k.source(), join(prefix, k.str()), "unknown key");
            }
        }
    }

    const toml::table* table(const toml::table& parent, std::string_view prefix,
                             std::string_view name) {
        const toml::node* n = parent.get(name);
        if (n == nullptr) {
            return nullptr;
        }
        if (!n->is_table()) {
            fail_type(*n, join(prefix, name), "a table");
            return nullptr;
        }
        return n->as_table();
    }

    std::optional<std::int64_t> integer(const toml::node& n, const std::string& key) {
        if (const auto* i = n.as_integer()) {
            return i->get();
        }
        fail_type(n, key, "an integer");
        return std::nullopt;
    }

    std::optional<std::string> string(const toml::node& n, const std::string& key) {
        const auto* s = n.as_string();
        if (s == nullptr) {
            fail_type(n, key, "a string");
            return std::nullopt;
        }
        // TOML allows "\u0000"; no path, name or delimiter can hold it.
        if (s->get().find('\0') != std::string::npos) {
            fail_value(n, key, "must not contain a NUL character");
            return std::nullopt;
        }
        return s->get();
    }

    bool in_range(const toml::node& n, const std::string& key, std::int64_t v, const int_range& r) {
        if (v < r.lo || v > r.hi) {
            fail_value(n, key, "must be " + std::string(r.text));
            return false;
        }
        return true;
    }

    template <typename T>
    void read_count(const toml::table& t, std::string_view prefix, std::string_view name,
                    const int_range& r, T& out) {
        const toml::node* n = t.get(name);
        if (n == nullptr) {
            return;
        }
        auto key = join(prefix, name);
        if (auto v = integer(*n, key); v && in_range(*n, key, *v, r)) {
            out = static_cast<T>(*v);
        }
    }

    void read_mode(const toml::table& t, std::string_view prefix, std::string_view name,
                   mode_t& out) {
        const toml::node* n = t.get(name);
        if (n == nullptr) {
            return;
        }
        auto key = join(prefix, name);
        auto v = integer(*n, key);
        if (!v) {
            return;
        }
        // `mode = 660` is decimal 660, which is 0o1224: the classic chmod mistake. Requiring
        // octal notation catches it even when the decimal number happens to be in range.
        if (n->as_integer()->flags() != toml::value_flags::format_as_octal) {
            fail_value(*n, key, "must be written in octal, such as 0o660");
            return;
        }
        if (*v < mode_range.lo || *v > mode_range.hi) {
            fail(n->source(), key,
                 "must be " + std::string(mode_range.text) + ", got " +
                     detail::toml_octal(static_cast<mode_t>(*v)));
            return;
        }
        out = static_cast<mode_t>(*v);
    }

    void read_flag(const toml::table& t, std::string_view prefix, std::string_view name,
                   bool& out) {
        const toml::node* n = t.get(name);
        if (n == nullptr) {
            return;
        }
        if (const auto* b = n->as_boolean()) {
            out = b->get();
        } else {
            fail_type(*n, join(prefix, name), "a boolean");
        }
    }

    void read_text(const toml::table& t, std::string_view prefix, std::string_view name,
                   std::string& out) {
        if (const toml::node* n = t.get(name)) {
            if (auto s = string(*n, join(prefix, name))) {
                out = std::move(*s);
            }
        }
    }

    template <typename E, std::size_t N>
    void read_choice(const toml::table& t, std::string_view prefix, std::string_view name,
                     const std::array<E, N>& choices, E& out) {
        const toml::node* n = t.get(name);
        if (n == nullptr) {
            return;
        }
        auto key = join(prefix, name);
        auto s = string(*n, key);
        if (!s) {
            return;
        }
        std::string listed;
        for (E choice : choices) {
            if (*s == to_string(choice)) {
                out = choice;
                return;
            }
            listed += (listed.empty() ? "" : ", ") + detail::toml_string(to_string(choice));
        }
        fail_value(*n, key, "must be one of " + listed);
    }

    /// An integer, or a string of digits with one of `units`' suffixes.
    std::optional<std::int64_t> read_scaled(const toml::table& t, std::string_view prefix,
                                            std::string_view name,
                                            std::span<const detail::unit> units,
                                            std::string_view syntax, const int_range& r) {
        const toml::node* n = t.get(name);
        if (n == nullptr) {
            return std::nullopt;
        }
        auto key = join(prefix, name);
        std::int64_t v = 0;
        if (const auto* i = n->as_integer()) {
            v = i->get();
        } else if (const auto* s = n->as_string()) {
            auto parsed = detail::parse_scaled(s->get(), units);
            if (const auto* e = std::get_if<detail::number_error>(&parsed)) {
                if (*e == detail::number_error::syntax) {
                    fail_value(*n, key, syntax);
                } else if (r.hi == unbounded) {
                    fail_value(*n, key, "must be at most " + std::to_string(unbounded));
                } else {
                    fail_value(*n, key, "must be " + std::string(r.text));
                }
                return std::nullopt;
            }
            v = std::get<std::int64_t>(parsed);
        } else {
            fail_type(*n, key, "an integer or a string");
            return std::nullopt;
        }
        if (!in_range(*n, key, v, r)) {
            return std::nullopt;
        }
        return v;
    }

    void read_duration(const toml::table& t, std::string_view prefix, std::string_view name,
                       const int_range& r, std::chrono::seconds& out) {
        if (auto v =
                read_scaled(t, prefix, name, detail::duration_units,
                            "must be a number of seconds with an optional s, m or h suffix", r)) {
            out = std::chrono::seconds(*v);
        }
    }

    /// A path that must be absolute; with `optional`, "" (meaning none) is accepted too.
    void read_path(const toml::table& t, std::string_view prefix, std::string_view name,
                   bool optional, std::filesystem::path& out) {
        const toml::node* n = t.get(name);
        if (n == nullptr) {
            return;
        }
        auto key = join(prefix, name);
        auto s = string(*n, key);
        if (!s) {
            return;
        }
        if (!s->starts_with('/') && !(optional && s->empty())) {
            fail_value(*n, key,
                       optional ? R"(must be an absolute path or "" for none)"
                                : "must be an absolute path");
            return;
        }
        out = std::move(*s);
    }

    /// An array of strings, each passed through `check` (std::nullopt: valid, else why not).
    template <typename Check>
    void read_strings(const toml::table& t, std::string_view prefix, std::string_view name,
                      Check check, std::vector<std::string>& out) {
        const toml::node* n = t.get(name);
        if (n == nullptr) {
            return;
        }
        auto key = join(prefix, name);
        const auto* list = n->as_array();
        if (list == nullptr) {
            fail_type(*n, key, "an array of strings");
            return;
        }
        std::vector<std::string> values;
        for (std::size_t i = 0; i < list->size(); ++i) {
            const toml::node& entry = *list->get(i);
            auto entry_key = indexed(key, i);
            auto s = string(entry, entry_key);
            if (!s) {
                continue;
            }
            if (std::optional<std::string> problem = check(*s)) {
                fail_value(entry, entry_key, *problem);
                continue;
            }
            values.push_back(std::move(*s));
        }
        out = std::move(values);
    }

    void read_server(const toml::table& t, server_settings& out) {
        check_keys(t, "server", server_keys);
        if (const toml::node* n = t.get("hostname")) {
            if (auto s = string(*n, "server.hostname")) {
                // The name goes into greetings and Received: lines as it is: a plain ASCII
                // host name cannot smuggle a CRLF or a space into a reply.
                auto problem = s->empty() ? std::nullopt : detail::check_domain(*s, false);
                if (problem) {
                    fail_value(*n, "server.hostname", "must be a host name: " + *problem);
                } else {
                    out.hostname = std::move(*s);
                }
            }
        }
        read_count(t, "server", "workers", workers_range, out.workers);
        read_text(t, "server", "user", out.user);
        read_text(t, "server", "group", out.group);
        if (const toml::node* n = t.get("group"); n && out.user.empty() && !out.group.empty()) {
            fail_value(*n, "server.group", "needs server.user");
        }
    }

    /// An array of tables (`[[key]]` in the file, `key` its dotted path): `read(table,
    /// "key[i]")` for each element; an element that is not a table, or a value that is not an
    /// array, is reported.
    template <typename Read>
    void read_table_array(const toml::node& n, const std::string& key, const Read& read) {
        const auto* entries = n.as_array();
        if (entries == nullptr) {
            fail_type(n, key, "an array of tables ([[" + key + "]])");
            return;
        }
        for (std::size_t i = 0; i < entries->size(); ++i) {
            const toml::node& entry = *entries->get(i);
            auto prefix = indexed(key, i);
            if (const auto* t = entry.as_table()) {
                read(*t, prefix);
            } else {
                fail_type(entry, prefix, "a table");
            }
        }
    }

    void read_listeners(const toml::table& root, std::vector<listener>& out) {
        const toml::node* n = root.get("listen");
        if (n == nullptr) {
            if (use_ == purpose::serve) {
                fail_missing(root, "listen", "missing; at least one [[listen]] table is required");
            }
            return;
        }
        if (const auto* entries = n->as_array(); entries != nullptr && entries->empty()) {
            fail(n->source(), "listen", "at least one [[listen]] table is required, got []");
            return;
        }
        read_table_array(*n, "listen", [&](const toml::table& t, const std::string& prefix) {
            if (auto l = read_listener(t, prefix)) {
                out.push_back(std::move(*l));
            }
        });
    }

    std::optional<listener> read_listener(const toml::table& t, const std::string& prefix) {
        check_keys(t, prefix, listen_keys);
        const toml::node* unix_node = t.get("unix");
        const toml::node* tcp_node = t.get("tcp");
        if (unix_node == nullptr && tcp_node == nullptr) {
            fail_missing(t, prefix, "needs exactly one of unix or tcp, got neither");
            return std::nullopt;
        }
        if (unix_node != nullptr && tcp_node != nullptr) {
            const toml::node* second =
                unix_node->source().begin < tcp_node->source().begin ? tcp_node : unix_node;
            fail(second->source(), prefix, "needs exactly one of unix or tcp, got both");
            return std::nullopt;
        }
        if (tcp_node != nullptr) {
            // Mode, owner and group belong to a socket file; a TCP port has none.
            for (auto name : {"mode"sv, "owner"sv, "group"sv}) {
                if (const toml::node* n = t.get(name)) {
                    fail(n->source(), join(prefix, name), "only allowed with unix, not with tcp");
                }
            }
            auto key = join(prefix, "tcp");
            auto text = string(*tcp_node, key);
            if (!text) {
                return std::nullopt;
            }
            auto parsed = detail::parse_tcp_address(*text);
            if (const auto* problem = std::get_if<std::string>(&parsed)) {
                fail_value(*tcp_node, key, *problem);
                return std::nullopt;
            }
            return std::get<tcp_listener>(std::move(parsed));
        }
        unix_listener u;
        auto key = join(prefix, "unix");
        auto path = string(*unix_node, key);
        if (!path) {
            return std::nullopt;
        }
        if (!path->starts_with('/')) {
            fail_value(*unix_node, key, "must be an absolute path");
            return std::nullopt;
        }
        if (path->size() > max_socket_path) {
            fail_value(*unix_node, key,
                       "must be at most " + std::to_string(max_socket_path) +
                           " bytes long (the size of sockaddr_un.sun_path)");
            return std::nullopt;
        }
        u.path = std::move(*path);
        read_mode(t, prefix, "mode", u.mode);
        read_text(t, prefix, "owner", u.owner);
        read_text(t, prefix, "group", u.group);
        return u;
    }

    void read_mailbox(const toml::table& root, config& c) {
        const toml::node* section = root.get("mailbox");
        const toml::table* t = table(root, "", "mailbox");
        if (t == nullptr) {
            if (section == nullptr && use_ != purpose::tool) {
                fail_missing(root, "mailbox.domains", std::string(missing_domains));
            }
            return;
        }
        check_keys(*t, "mailbox", mailbox_keys);
        read_domains(*t, c.local_domains);
        auto& m = c.mailbox;
        if (const toml::node* n = t->get("maildir")) {
            if (auto s = string(*n, "mailbox.maildir")) {
                if (auto problem = detail::check_maildir_template(*s)) {
                    fail_value(*n, "mailbox.maildir", *problem);
                } else {
                    m.maildir = std::move(*s);
                }
            }
        }
        read_flag(*t, "mailbox", "lowercase_local_part", m.lowercase_local_part);
        if (const toml::node* n = t->get("recipient_delimiter")) {
            read_delimiter(*n, m.recipient_delimiter);
        }
        read_choice(*t, "mailbox", "on_missing", missing_maildir_values, m.on_missing);
        read_mode(*t, "mailbox", "create_mode", m.create_mode);
        // Without the owner's rwx, mailseal (no longer root) could not make new/, cur/ and tmp/
        // inside the directories it has just created.
        if (const toml::node* n = t->get("create_mode"); n && (m.create_mode & 0700) != 0700) {
            fail(n->source(), "mailbox.create_mode",
                 "must include 0o700 so mailseal can create new/, cur/ and tmp/, got " +
                     detail::toml_octal(m.create_mode));
            m.create_mode = mailbox_settings{}.create_mode;
        }
        read_choice(*t, "mailbox", "over_quota", quota_reply_values, m.over_quota);
        read_choice(*t, "mailbox", "page_cache", page_cache_values, m.page_cache);
    }

    void read_domains(const toml::table& t, std::vector<std::string>& out) {
        const toml::node* n = t.get("domains");
        if (n == nullptr) {
            if (use_ != purpose::tool) {
                fail_missing(t, "mailbox.domains", std::string(missing_domains));
            }
            return;
        }
        read_strings(
            t, "mailbox", "domains",
            [](const std::string& s) -> std::optional<std::string> {
                if (auto problem = detail::check_domain(util::ascii_lower(s), true)) {
                    return "must be a domain name: " + *problem;
                }
                return std::nullopt;
            },
            out);
        if (const auto* list = n->as_array(); list != nullptr && list->empty()) {
            fail(n->source(), "mailbox.domains", "at least one domain is required, got []");
        }
        // Domains compare case-insensitively (RFC 5321 §2.4); storing them lowercased lets
        // delivery compare with ==. Only ASCII letters are folded.
        for (auto& domain : out) {
            domain = util::ascii_lower(domain);
        }
        // Both forms of one internationalised name are one domain (recipient.cpp matches by
        // A-label): listed twice, its mail would go to whichever entry came first.
        for (std::size_t i = 0; i < out.size(); ++i) {
            for (std::size_t j = 0; j < i; ++j) {
                if (detail::domain_key(out[i]) == detail::domain_key(out[j])) {
                    fail(n->source(), "mailbox.domains",
                         "\"" + out[i] + "\" and \"" + out[j] +
                             "\" are the same domain (U-label and A-label forms): list it once");
                    return;
                }
            }
        }
    }

    void read_delimiter(const toml::node& n, std::string& out) {
        auto s = string(n, "mailbox.recipient_delimiter");
        if (!s) {
            return;
        }
        // Delivery matches the delimiter byte by byte, so each must be one ASCII character.
        // '@' would split the domain off and '/' would reach into the Maildir path.
        for (char c : *s) {
            if (c == '@' || c == '/') {
                fail_value(n, "mailbox.recipient_delimiter", "must not contain '@' or '/'");
                return;
            }
            auto byte = static_cast<unsigned char>(c);
            if (byte <= 0x20 || byte >= 0x7f) {
                fail_value(n, "mailbox.recipient_delimiter",
                           "must contain only visible ASCII characters");
                return;
            }
        }
        out = std::move(*s);
    }

    void read_limits(const toml::table& t, struct limits& out) {
        check_keys(t, "limits", limits_keys);
        if (auto v = read_scaled(t, "limits", "message_size", detail::size_units,
                                 "must be a number of bytes with an optional K, M or G suffix",
                                 message_size_range)) {
            out.message_size = static_cast<std::uint64_t>(*v);
        }
        read_count(t, "limits", "recipients", recipients_range, out.recipients);
        read_count(t, "limits", "connections", connections_range, out.connections);
        read_count(t, "limits", "command_line_length", command_line_range, out.command_line_length);
        read_count(t, "limits", "data_line_length", data_line_range, out.data_line_length);
        read_duration(t, "limits", "idle_timeout", timeout_range, out.idle_timeout);
        read_duration(t, "limits", "command_timeout", timeout_range, out.command_timeout);
        read_duration(t, "limits", "data_timeout", timeout_range, out.data_timeout);
    }

    void read_dns(const toml::table& t, dns_settings& out) {
        check_keys(t, "dns", dns_keys);
        if (const toml::node* n = t.get("trust_anchor_file")) {
            // DNSSEC without an anchor calls every answer insecure, which would silently turn
            // sealing off: there is no "none" here (use trust_anchors for private zones).
            if (const auto* s = n->as_string(); s != nullptr && s->get().empty()) {
                fail_value(*n, "dns.trust_anchor_file",
                           "must name a file of DS or DNSKEY records (without a trust anchor "
                           "every answer is insecure)");
            } else {
                read_path(t, "dns", "trust_anchor_file", false, out.trust_anchor_file);
            }
        }
        read_strings(
            t, "dns", "trust_anchors",
            [](const std::string& s) -> std::optional<std::string> {
                if (!detail::is_trust_anchor_record(s)) {
                    return "must be one DS or DNSKEY record in zone-file format";
                }
                return std::nullopt;
            },
            out.trust_anchors);
        read_strings(t, "dns", "forwarders", detail::check_dns_server, out.forwarders);
        read_stub_zones(t, out.stub_zones);
        read_path(t, "dns", "unbound_conf", true, out.unbound_conf);
        read_duration(t, "dns", "timeout", dns_timeout_range, out.timeout);
        read_flag(t, "dns", "lowercase_retry", out.lowercase_retry);
    }

    void read_stub_zones(const toml::table& dns, std::vector<stub_zone>& out) {
        if (const toml::node* n = dns.get("stub_zone")) {
            read_table_array(*n, "dns.stub_zone",
                             [&](const toml::table& t, const std::string& prefix) {
                                 if (auto zone = read_stub_zone(t, prefix, out)) {
                                     out.push_back(std::move(*zone));
                                 }
                             });
        }
    }

    std::optional<stub_zone> read_stub_zone(const toml::table& t, const std::string& prefix,
                                            const std::vector<stub_zone>& earlier) {
        check_keys(t, prefix, stub_zone_keys);
        stub_zone z;
        bool ok = true;
        if (const toml::node* n = t.get("zone")) {
            auto key = join(prefix, "zone");
            if (auto s = string(*n, key)) {
                // DNS names compare case-insensitively (RFC 4343); lowercase makes duplicates
                // visible.
                auto zone = util::ascii_lower(*s);
                auto same = std::find_if(earlier.begin(), earlier.end(),
                                         [&](const stub_zone& e) { return e.zone == zone; });
                if (auto problem = detail::check_zone_name(zone)) {
                    fail_value(*n, key, *problem);
                    ok = false;
                } else if (same != earlier.end()) {
                    fail_value(*n, key,
                               "is already a stub zone (dns.stub_zone[" +
                                   std::to_string(same - earlier.begin()) + "])");
                    ok = false;
                } else {
                    z.zone = std::move(zone);
                }
            } else {
                ok = false;
            }
        } else {
            fail_missing(t, join(prefix, "zone"), "missing; a stub zone needs its zone name");
            ok = false;
        }
        if (const toml::node* n = t.get("servers")) {
            read_strings(t, prefix, "servers", detail::check_dns_server, z.servers);
            if (const auto* list = n->as_array(); list != nullptr && list->empty()) {
                fail(n->source(), join(prefix, "servers"),
                     "at least one server is required, got []");
            }
            ok = ok && !z.servers.empty();
        } else {
            fail_missing(t, join(prefix, "servers"),
                         "missing; a stub zone needs at least one server");
            ok = false;
        }
        return ok ? std::optional<stub_zone>(std::move(z)) : std::nullopt;
    }

    void read_keys(const toml::table& t, key_settings& out) {
        check_keys(t, "keys", keys_keys);
        read_path(t, "keys", "local_store", true, out.local_store);
        read_path(t, "keys", "smime_ca_file", true, out.smime_ca_file);
        read_flag(t, "keys", "accept_expired_dane_ee", out.accept_expired_dane_ee);
        read_choice(t, "keys", "preference", key_preference_values, out.preference);
        read_count(t, "keys", "cache_entries", cache_entries_range, out.cache_entries);
    }

    void read_metrics(const toml::table& t, metrics_settings& out) {
        check_keys(t, "metrics", metrics_keys);
        const toml::node* n = t.get("listen");
        if (n == nullptr) {
            return;
        }
        auto text = string(*n, "metrics.listen");
        if (!text || text->empty()) {
            return;
        }
        if (text->front() == '/') {
            out.listen = unix_listener{*text, 0600, {}, {}};
            return;
        }
        auto parsed = detail::parse_tcp_address(*text);
        if (auto* problem = std::get_if<std::string>(&parsed)) {
            fail_value(*n, "metrics.listen", *problem + " (or an absolute socket path)");
            return;
        }
        out.listen = std::get<tcp_listener>(parsed);
    }

    /// A next hop that is one of our own listeners would relay every copy back to mailseal,
    /// which would wait on itself until the timeout.
    void check_not_ours(const toml::node& n, const listener& hop,
                        const std::vector<listener>& listeners) {
        for (const auto& l : listeners) {
            const auto* u = std::get_if<unix_listener>(&l);
            const auto* hop_u = std::get_if<unix_listener>(&hop);
            const auto* t = std::get_if<tcp_listener>(&l);
            const auto* hop_t = std::get_if<tcp_listener>(&hop);
            if ((u && hop_u && u->path == hop_u->path) ||
                (t && hop_t && t->address == hop_t->address && t->port == hop_t->port)) {
                fail_value(n, "store.next_hop", "is one of mailseal's own [[listen]] addresses");
                return;
            }
        }
    }

    void read_store(const toml::table& t, store_settings& out,
                    const std::vector<listener>& listeners) {
        check_keys(t, "store", store_keys);
        read_choice(t, "store", "kind", store_kind_values, out.kind);
        read_duration(t, "store", "timeout", timeout_range, out.timeout);
        read_duration(t, "store", "data_done_timeout", data_done_timeout_range,
                      out.data_done_timeout);
        read_count(t, "store", "idle_connections", idle_connections_range, out.idle_connections);
        const toml::node* n = t.get("next_hop");
        if (n != nullptr) {
            auto text = string(*n, "store.next_hop");
            if (!text) {
                return;
            }
            if (out.kind != store_kind::lmtp) {
                fail_value(*n, "store.next_hop", "is only used with kind = \"lmtp\"");
                return;
            }
            if (!text->empty() && text->front() == '/') {
                if (text->size() > max_socket_path) {
                    fail_value(*n, "store.next_hop",
                               "socket path longer than " + std::to_string(max_socket_path) +
                                   " octets");
                    return;
                }
                out.next_hop = unix_listener{*text, 0600, {}, {}};
                check_not_ours(*n, *out.next_hop, listeners);
                return;
            }
            auto parsed = detail::parse_tcp_address(*text);
            if (auto* problem = std::get_if<std::string>(&parsed)) {
                fail_value(*n, "store.next_hop", *problem + " (or an absolute socket path)");
                return;
            }
            if (std::get<tcp_listener>(parsed).port == 0) {
                fail_value(*n, "store.next_hop", "needs a port other than 0");
                return;
            }
            out.next_hop = std::get<tcp_listener>(parsed);
            check_not_ours(*n, *out.next_hop, listeners);
        } else if (out.kind == store_kind::lmtp) {
            fail_missing(t, "store.next_hop",
                         "missing; kind = \"lmtp\" needs the next hop's LMTP socket or address");
        }
    }

    void read_seal(const toml::table& t, config& c) {
        auto& out = c.seal;
        check_keys(t, "seal", seal_keys);
        read_choice(t, "seal", "on_no_key", no_key_action_values, out.defaults.on_no_key);
        read_choice(t, "seal", "passthrough", passthrough_mode_values, out.defaults.passthrough);
        read_choice(t, "seal", "cipher", content_cipher_values, out.defaults.smime.cipher);
        read_choice(t, "seal", "rsa_padding", rsa_padding_values, out.defaults.smime.padding);
        read_choice(t, "seal", "openpgp_cipher", openpgp_cipher_values,
                    out.defaults.openpgp.cipher);
        read_formats(t, "seal", out.defaults.formats);
        read_choice(t, "seal", "headers", header_mode_values, out.defaults.headers);
        if (const toml::node* n = t.get("protected_subject")) {
            if (auto s = string(*n, "seal.protected_subject")) {
                if (s->empty() || util::printable(*s) != *s) {
                    fail_value(*n, "seal.protected_subject",
                               "must be non-empty printable text (it becomes a header field)");
                } else {
                    out.protected_subject = std::move(*s);
                }
            }
        }
        if (const toml::node* n = t.get("policy")) {
            read_table_array(*n, "seal.policy",
                             [&](const toml::table& rule, const std::string& prefix) {
                                 read_seal_rule(rule, prefix, c);
                             });
        }
    }

    /// `formats`: a non-empty array of distinct format names, in order of preference.
    bool read_formats(const toml::table& t, std::string_view prefix,
                      std::vector<seal_format>& out) {
        const toml::node* n = t.get("formats");
        if (n == nullptr) {
            return false;
        }
        auto key = join(prefix, "formats");
        const auto* list = n->as_array();
        if (list == nullptr) {
            fail_type(*n, key, "an array of strings");
            return false;
        }
        if (list->empty()) {
            fail(n->source(), key, "at least one format is required, got []");
            return false;
        }
        std::vector<seal_format> formats;
        bool ok = true;
        for (std::size_t i = 0; i < list->size(); ++i) {
            const toml::node& entry = *list->get(i);
            auto entry_key = indexed(key, i);
            auto s = string(entry, entry_key);
            if (!s) {
                ok = false;
                continue;
            }
            auto known = std::find_if(seal_format_values.begin(), seal_format_values.end(),
                                      [&](seal_format f) { return to_string(f) == *s; });
            if (known == seal_format_values.end()) {
                fail_value(entry, entry_key, "must be \"smime\" or \"openpgp\"");
                ok = false;
            } else if (std::find(formats.begin(), formats.end(), *known) != formats.end()) {
                fail_value(entry, entry_key, "is listed twice");
                ok = false;
            } else {
                formats.push_back(*known);
            }
        }
        if (ok) {
            out = std::move(formats);
        }
        return ok;
    }

    void read_seal_rule(const toml::table& t, const std::string& prefix, config& c) {
        check_keys(t, prefix, seal_rule_keys);
        seal_rule rule;
        const toml::node* n = t.get("match");
        if (n == nullptr) {
            fail_missing(t, join(prefix, "match"), "missing; a policy names a domain or address");
            return;
        }
        auto key = join(prefix, "match");
        auto text = string(*n, key);
        if (!text) {
            return;
        }
        // Domains compare case-insensitively; the user part as the mailbox names it.
        auto at = text->rfind('@');
        std::string user = at == std::string::npos ? std::string() : text->substr(0, at);
        std::string domain =
            util::ascii_lower(at == std::string::npos ? *text : text->substr(at + 1));
        if (c.mailbox.lowercase_local_part) {
            user = util::ascii_lower(user);
        }
        if (auto problem = detail::check_domain(domain, true)) {
            fail_value(*n, key, "must be a domain or user@domain: " + *problem);
            return;
        }
        if (at != std::string::npos && (user.empty() || util::printable(user) != user)) {
            fail_value(*n, key, "must be a domain or user@domain with a non-empty user");
            return;
        }
        // Kept in A-label form: the policy of bücher.example is xn--bcher-kva.example's too.
        domain = detail::domain_key(domain);
        rule.match = at == std::string::npos ? domain : user + "@" + domain;
        auto same = std::find_if(c.seal.rules.begin(), c.seal.rules.end(),
                                 [&](const seal_rule& r) { return r.match == rule.match; });
        if (same != c.seal.rules.end()) {
            fail_value(*n, key,
                       "already has a policy (seal.policy[" +
                           std::to_string(same - c.seal.rules.begin()) + "])");
            return;
        }
        auto optional_choice = [&](std::string_view name, const auto& values, auto& slot) {
            if (t.get(name) != nullptr) {
                auto value = values.front();
                read_choice(t, prefix, name, values, value);
                slot = value;
            }
        };
        optional_choice("on_no_key", no_key_action_values, rule.on_no_key);
        optional_choice("passthrough", passthrough_mode_values, rule.passthrough);
        optional_choice("cipher", content_cipher_values, rule.cipher);
        optional_choice("rsa_padding", rsa_padding_values, rule.padding);
        optional_choice("headers", header_mode_values, rule.headers);
        optional_choice("openpgp_cipher", openpgp_cipher_values, rule.openpgp_cipher);
        if (t.get("formats") != nullptr) {
            std::vector<seal_format> formats;
            if (read_formats(t, prefix, formats)) {
                rule.formats = std::move(formats);
            }
        }
        c.seal.rules.push_back(std::move(rule));
    }

    std::string file_;
    purpose use_;
    std::vector<error> errors_;
    std::vector<error> missing_;
};

/// Owns a file descriptor.
class file_descriptor {
public:
    explicit file_descriptor(int fd) : fd_(fd) {}
    file_descriptor(const file_descriptor&) = delete;
    file_descriptor& operator=(const file_descriptor&) = delete;
    ~file_descriptor() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    int get() const { return fd_; }

private:
    int fd_;
};

/// A configuration is a few kilobytes; the cap stops `--config /dev/zero` reading forever.
constexpr std::size_t max_file_size = 1024 * 1024;

std::variant<std::string, std::error_code> read_whole_file(const std::filesystem::path& path) {
    file_descriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        return std::error_code(errno, std::system_category());
    }
    std::string content;
    std::array<char, 8192> buffer{};
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return std::error_code(errno, std::system_category());
        }
        if (n == 0) {
            return content;
        }
        content.append(buffer.data(), static_cast<std::size_t>(n));
        if (content.size() > max_file_size) {
            return std::make_error_code(std::errc::file_too_large);
        }
    }
}

} // namespace

std::variant<config, error> load_string(std::string_view toml, std::string_view source_name,
                                        purpose use) {
    toml::table root;
    try {
        root = toml::parse(toml, source_name);
    } catch (const toml::parse_error& e) {
        return error{std::string(source_name), e.source().begin.line, e.source().begin.column, "",
                     std::string(e.description())};
    }
    loader l(source_name, use);
    config c = l.load(root);
    if (auto e = l.first_error()) {
        return *std::move(e);
    }
    return c;
}

std::variant<config, error> load_file(const std::filesystem::path& path, purpose use) {
    auto content = read_whole_file(path);
    if (const auto* ec = std::get_if<std::error_code>(&content)) {
        return error{path.string(), 0, 0, "", "cannot read: " + ec->message()};
    }
    return load_string(std::get<std::string>(content), path.string(), use);
}

} // namespace mailseal::config
