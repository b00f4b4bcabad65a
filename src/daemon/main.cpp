// SPDX-License-Identifier: Apache-2.0
// mailseal: the command line. Parses arguments, loads the configuration and hands over to the
// server; everything else lives in the component libraries.

#include <csignal>
#include <cstdio>
#include <functional>
#include <grp.h>
#include <iostream>
#include <malloc.h>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <systemd/sd-daemon.h>
#include <thread>
#include <unistd.h>
#include <utility>

#include <CLI/CLI.hpp>
#include <boost/asio.hpp>

#include <mailseal/config/config.hpp>
#include <mailseal/dns/resolver.hpp>
#include <mailseal/log/log.hpp>
#include <mailseal/metrics/metrics.hpp>
#include <mailseal/recipient/recipient.hpp>
#include <mailseal/seal/formats.hpp>
#include <mailseal/seal/message.hpp>
#include <mailseal/server/server.hpp>
#include <mailseal/store/maildir.hpp>
#include <mailseal/tools/tools.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/errno_text.hpp>

namespace {

using namespace mailseal;

/// How long a stopping daemon waits for transactions in flight before it exits anyway.
constexpr std::chrono::seconds shutdown_grace{30};

/// The configuration file with the host name filled in, or the first error.
std::variant<config::config, std::string>
read_config(const std::string& path, config::purpose use = config::purpose::serve) {
    auto loaded = config::load_file(path, use);
    if (auto* problem = std::get_if<config::error>(&loaded)) {
        return problem->str();
    }
    auto cfg = std::move(std::get<config::config>(loaded));
    if (cfg.server.hostname.empty()) {
        char name[256] = {};
        if (::gethostname(name, sizeof name - 1) == 0 && name[0] != '\0') {
            cfg.server.hostname = name;
        } else {
            cfg.server.hostname = "localhost";
        }
    }
    return cfg;
}

std::optional<config::config> load(const std::string& path, config::purpose use) {
    auto loaded = read_config(path, use);
    if (auto* problem = std::get_if<std::string>(&loaded)) {
        std::cerr << "mailseal: " << *problem << '\n';
        return std::nullopt;
    }
    return std::move(std::get<config::config>(loaded));
}

/// For commands whose --config is optional: the defaults when no path was given.
std::optional<config::config> load_if_given(const std::string& path) {
    return path.empty() ? std::optional<config::config>(config::config{})
                        : load(path, config::purpose::tool);
}

/// The resolver for SMIMEA lookups. A configuration libunbound refuses, or one without a
/// DNSSEC trust anchor, is a configuration error: without an anchor nothing would be sealed.
std::variant<std::unique_ptr<dns::resolver>, std::string> make_resolver(boost::asio::io_context& io,
                                                                        const config::config& cfg) {
    auto made = dns::resolver::create(io.get_executor(), cfg.dns);
    if (auto* problem = std::get_if<std::string>(&made)) {
        return "dns: " + *problem;
    }
    return std::move(std::get<std::unique_ptr<dns::resolver>>(made));
}

/// What `serve` builds from a configuration file, at start and again at each SIGHUP.
struct daemon_setup {
    config::config cfg;
    std::unique_ptr<dns::resolver> resolver;
    seal::format_set formats;
};

std::variant<daemon_setup, std::string> prepare(boost::asio::io_context& io,
                                                const std::string& path) {
    auto loaded = read_config(path);
    if (auto* problem = std::get_if<std::string>(&loaded)) {
        return std::move(*problem);
    }
    auto& cfg = std::get<config::config>(loaded);
    auto resolver = make_resolver(io, cfg);
    if (auto* problem = std::get_if<std::string>(&resolver)) {
        return std::move(*problem);
    }
    auto formats = seal::format_set::load(cfg);
    if (auto* problem = std::get_if<std::string>(&formats)) {
        return std::move(*problem);
    }
    return daemon_setup{std::move(cfg),
                        std::move(std::get<std::unique_ptr<dns::resolver>>(resolver)),
                        std::move(std::get<seal::format_set>(formats))};
}

/// The Maildir spec: "readers ... should delete files in tmp/ that have not been accessed for
/// 36 hours"; a delivery agent that died mid-write leaves such files.
void remove_stale_tmp_files(const config::config& cfg) {
    auto now = std::chrono::system_clock::now();
    std::size_t removed = 0;
    for (const auto& maildir : recipient::existing_maildirs(cfg)) {
        removed += store::remove_stale_tmp(maildir, now);
    }
    if (removed > 0) {
        log::info("stale-tmp-removed", {{"files", std::to_string(removed)}});
    }
}

/// glibc gives memory back to the kernel as soon as 128 KiB lie free at the top of a thread's
/// arena, so every message's buffers were faulted in afresh by the next message: a tenth of the
/// daemon's time at 64 KiB. Freed memory now stays in the arenas while mail flows (freed
/// plaintext is wiped first, as before), buffers up to 4 MiB come from the arenas rather than
/// from mmap() each time, and the server's trim after a second of idleness hands it all back.
void keep_freed_memory_while_busy() {
    ::mallopt(M_TRIM_THRESHOLD, 8 << 20);
    ::mallopt(M_MMAP_THRESHOLD, 4 << 20);
}

/// Each recipient of a transaction holds two descriptors while its message arrives (its file and
/// the Maildir's tmp/, see store/maildir.hpp), so the soft open-file limit (1024 under systemd)
/// is raised to the hard one, and a configuration that could still exceed it is reported:
/// running out of descriptors defers mail.
void raise_open_file_limit(const config::config& cfg) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return;
    }
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
        ::getrlimit(RLIMIT_NOFILE, &limit);
    }
    // Per connection: its socket and two per recipient; plus listeners, logs, the pool.
    auto needed =
        static_cast<rlim_t>(cfg.limits.connections) * (2 * cfg.limits.recipients + 1) + 64;
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
        log::warning("open-file-limit-low",
                     {{"limit", std::to_string(limit.rlim_cur)},
                      {"needed", std::to_string(needed)},
                      {"hint", "raise LimitNOFILE= or lower limits.connections/recipients"}});
    }
}

struct identity {
    uid_t uid;
    gid_t gid;
};

/// server.user and server.group as ids (the group defaults to the user's primary group);
/// nullopt when no user is configured, or why they do not exist.
std::variant<std::optional<identity>, std::string> configured_identity(const config::config& cfg) {
    if (cfg.server.user.empty()) {
        return std::optional<identity>();
    }
    const passwd* pw = ::getpwnam(cfg.server.user.c_str());
    if (pw == nullptr) {
        return "server.user: unknown user '" + cfg.server.user + "'";
    }
    identity id{pw->pw_uid, pw->pw_gid};
    if (!cfg.server.group.empty()) {
        const group* gr = ::getgrnam(cfg.server.group.c_str());
        if (gr == nullptr) {
            return "server.group: unknown group '" + cfg.server.group + "'";
        }
        id.gid = gr->gr_gid;
    }
    return std::optional<identity>(id);
}

/// Started as root, `serve` binds its listeners and then runs as server.user; it never keeps
/// root while it parses mail from the network, unless `allow_root` (test rigs, containers
/// whose root is unprivileged) says so. Returns why it cannot run as configured.
std::optional<std::string> check_identity(const config::config& cfg, bool allow_root) {
    auto wanted = configured_identity(cfg);
    if (auto* problem = std::get_if<std::string>(&wanted)) {
        return *problem;
    }
    if (const auto& id = std::get<std::optional<identity>>(wanted)) {
        if (id->uid == 0) {
            return "server.user must not be root";
        }
        if (::geteuid() != 0 && id->uid != ::geteuid()) {
            return "server.user is '" + cfg.server.user + "', but mailseal runs as uid " +
                   std::to_string(::geteuid()) + " without root to switch users";
        }
        return std::nullopt;
    }
    if (::geteuid() == 0 && !allow_root) {
        return "refusing to run as root: set server.user (the owner of the Maildirs, e.g. "
               "\"vmail\"); mailseal binds its listeners as root, then runs as that user";
    }
    return std::nullopt;
}

/// Becomes server.user and server.group (after the listeners are bound). check_identity()
/// has accepted the configuration.
std::optional<std::string> drop_privileges(const config::config& cfg) {
    if (cfg.server.user.empty() || ::geteuid() != 0) {
        if (::geteuid() == 0) {
            log::warning("running-as-root", {{"hint", "set server.user"}});
        }
        return std::nullopt;
    }
    auto wanted = configured_identity(cfg);
    if (auto* problem = std::get_if<std::string>(&wanted)) {
        return *problem;
    }
    auto [uid, gid] = *std::get<std::optional<identity>>(wanted);
    // Supplementary groups first (root's would otherwise stay), then the group, then the user;
    // glibc applies each to every thread already running (libunbound's, the worker pool).
    if (::setgroups(1, &gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
        return "cannot switch to user " + cfg.server.user + ": " + util::errno_text(errno);
    }
    if (::setuid(0) == 0) {
        return "still able to regain root after switching to " + cfg.server.user;
    }
    log::info(
        "privileges-dropped",
        {{"user", cfg.server.user}, {"uid", std::to_string(uid)}, {"gid", std::to_string(gid)}});
    return std::nullopt;
}

void apply_logging(const config::logging& settings) {
    log::set_level(settings.level);
    log::set_format(settings.format);
    log::set_output(settings.output);
}

int serve(const std::string& config_path, bool allow_root) {
    boost::asio::io_context io(1);
    auto prepared = prepare(io, config_path);
    if (auto* problem = std::get_if<std::string>(&prepared)) {
        std::cerr << "mailseal: " << *problem << '\n';
        return EX_CONFIG;
    }
    auto& setup = std::get<daemon_setup>(prepared);
    // The start-up configuration, for housekeeping (the server keeps its own copy).
    const config::config cfg = setup.cfg;
    apply_logging(cfg.logging);
    ::umask(077);
    // No core dump may hold message plaintext: a crash must not write it to disk.
    rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    std::signal(SIGPIPE, SIG_IGN);
    raise_open_file_limit(cfg);
    keep_freed_memory_while_busy();

    if (auto problem = check_identity(cfg, allow_root)) {
        std::cerr << "mailseal: " << *problem << '\n';
        return EX_CONFIG;
    }
    if (auto problem = log::capture_library_output()) {
        log::warning("library-output-not-captured", {{"error", *problem}});
    }
    auto bound = server::server::bind(io, std::move(setup.cfg), std::move(setup.resolver),
                                      std::move(setup.formats));
    if (auto* problem = std::get_if<std::string>(&bound)) {
        log::error("startup-failed", {{"error", *problem}});
        return EX_OSERR;
    }
    auto& srv = *std::get<std::unique_ptr<server::server>>(bound);
    if (auto problem = drop_privileges(cfg)) {
        log::error("startup-failed", {{"error", *problem}});
        return EX_OSERR;
    }
    // After the switch: setuid() resets the dumpable flag.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    boost::asio::signal_set signals(io, SIGTERM, SIGINT);
    // SIGHUP: read the configuration file again. A file that does not load (or changes what
    // only a restart can) is refused whole, and the running configuration stays.
    boost::asio::signal_set hangups(io, SIGHUP);
    std::function<void()> wait_for_hangup = [&] {
        hangups.async_wait([&](const boost::system::error_code& ec, int) {
            if (ec) {
                return;
            }
            ::sd_notify(0, "RELOADING=1\nSTATUS=Reloading the configuration");
            auto next = prepare(io, config_path);
            std::optional<std::string> problem;
            if (auto* failed = std::get_if<std::string>(&next)) {
                problem = std::move(*failed);
            } else {
                auto& ready = std::get<daemon_setup>(next);
                auto logging = ready.cfg.logging;
                auto warnings = config::client_warnings(ready.cfg);
                problem = srv.reload(std::move(ready.cfg), std::move(ready.resolver),
                                     std::move(ready.formats));
                if (!problem) {
                    apply_logging(logging);
                    for (const auto& w : warnings) {
                        log::warning("client-compatibility", {{"setting", w}});
                    }
                }
            }
            metrics::global().config_loaded(!problem, std::chrono::system_clock::now());
            if (problem) {
                log::error("reload-failed", {{"config", config_path},
                                             {"error", *problem},
                                             {"hint", "the running configuration stays in force"}});
            } else {
                log::info("reloaded", {{"config", config_path},
                                       {"connections", std::to_string(srv.open_connections())}});
            }
            ::sd_notify(0, "READY=1\nSTATUS=Accepting LMTP connections");
            wait_for_hangup();
        });
    };
    wait_for_hangup();
    boost::asio::steady_timer grace(io);
    boost::asio::steady_timer drained(io);
    // Once stopping, check for the last connection to end, then let run() return.
    std::function<void()> wait_for_drain = [&] {
        if (srv.open_connections() == 0) {
            grace.cancel();
            signals.cancel();
            hangups.cancel();
            return;
        }
        drained.expires_after(std::chrono::milliseconds(50));
        drained.async_wait([&](const boost::system::error_code& ec) {
            if (!ec) {
                wait_for_drain();
            }
        });
    };
    auto force_stop = [&](std::string_view why) {
        log::warning("shutdown-forced",
                     {{"reason", why}, {"connections", std::to_string(srv.open_connections())}});
        io.stop();
    };
    signals.async_wait([&](const boost::system::error_code& ec, int signo) {
        if (ec) {
            return;
        }
        log::info("stopping", {{"signal", signo == SIGTERM ? "TERM" : "INT"},
                               {"connections", std::to_string(srv.open_connections())}});
        ::sd_notify(0, "STOPPING=1\nSTATUS=Finishing transactions in flight");
        srv.stop();
        grace.expires_after(shutdown_grace);
        grace.async_wait([&](const boost::system::error_code& wait_ec) {
            if (!wait_ec) {
                force_stop("grace period over");
            }
        });
        // A second signal means the operator does not want to wait.
        signals.async_wait([&](const boost::system::error_code& again, int) {
            if (!again) {
                force_stop("second signal");
            }
        });
        wait_for_drain();
    });

    // Before the first scrape can come: never a build_info without its version.
    metrics::global().set_version(MAILSEAL_VERSION);
    metrics::global().config_loaded(true, std::chrono::system_clock::now());
    srv.start();
    log::info("started", {{"version", MAILSEAL_VERSION}, {"hostname", cfg.server.hostname}});
    for (const auto& w : config::client_warnings(cfg)) {
        log::warning("client-compatibility", {{"setting", w}});
    }
    // Type=notify: systemd starts Postfix (After=) only once mailseal accepts connections.
    ::sd_notify(0, "READY=1\nSTATUS=Accepting LMTP connections");
    // Housekeeping that walks every Maildir must not delay the listeners: its own thread.
    std::jthread housekeeping([&cfg] {
        if (cfg.store.kind == config::store_kind::maildir) {
            remove_stale_tmp_files(cfg);
        }
    });
    io.run();
    log::info("stopped");
    return EX_OK;
}

/// The configuration for `deliver` and `test-message`, which write a Maildir without the
/// daemon; nullopt after printing why it cannot be used.
std::optional<config::config> load_for_local_delivery(const std::string& config_path) {
    auto cfg = load(config_path, config::purpose::deliver);
    if (!cfg) {
        return std::nullopt;
    }
    // pipe(8) puts stderr into bounces: only the one-line diagnostic and real errors.
    log::set_level(config::log_level::error);
    ::umask(077);
    // Run by hand as root: write the Maildir as its owner, as the daemon does.
    if (auto problem = drop_privileges(*cfg)) {
        std::cerr << "mailseal: " << *problem << '\n';
        return std::nullopt;
    }
    return cfg;
}

/// check-config's --json report of a configuration that cannot be used: exit 78.
int config_refused(std::string message, const config::error* at) {
    nlohmann::json report = {{"valid", false}, {"error", std::move(message)}};
    if (at != nullptr) {
        report["file"] = at->file;
        if (at->line != 0) {
            report["line"] = at->line;
            report["column"] = at->column;
        }
        if (!at->key.empty()) {
            report["key"] = at->key;
        }
    }
    std::cout << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    return EX_CONFIG;
}

int check_config(const std::string& config_path, bool json, bool quiet) {
    if (json) {
        auto loaded = config::load_file(config_path);
        if (auto* problem = std::get_if<config::error>(&loaded)) {
            std::cerr << "mailseal: " << problem->str() << '\n';
            return config_refused(problem->message, problem);
        }
    }
    boost::asio::io_context io(1);
    auto prepared = prepare(io, config_path);
    if (auto* problem = std::get_if<std::string>(&prepared)) {
        std::cerr << "mailseal: " << *problem << '\n';
        return json ? config_refused(*problem, nullptr) : EX_CONFIG;
    }
    const auto& cfg = std::get<daemon_setup>(prepared).cfg;
    // The user and group must exist; whether this process may switch to them is serve's
    // business (check-config may run as anyone).
    if (auto wanted = configured_identity(cfg); std::holds_alternative<std::string>(wanted)) {
        std::cerr << "mailseal: " << std::get<std::string>(wanted) << '\n';
        return json ? config_refused(std::get<std::string>(wanted), nullptr) : EX_CONFIG;
    }
    auto warnings = config::client_warnings(cfg);
    for (const auto& w : warnings) {
        std::cerr << "mailseal: warning: " << w << '\n';
    }
    if (json) {
        nlohmann::json list = warnings;
        std::cout << "{\"valid\": true, \"warnings\": " << list.dump()
                  << ", \"config\": " << config::describe_json(cfg) << "}\n";
    } else if (!quiet) {
        std::cout << config::describe(cfg);
    }
    return EX_OK;
}

} // namespace

int main(int argc, char** argv) {
    // Before any thread starts, as gmime requires.
    seal::gmime_library gmime;
    CLI::App app{"mailseal: an LMTP delivery agent that seals mail to its recipients' S/MIME "
                 "or OpenPGP keys and stores it in Maildir"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("mailseal ") + MAILSEAL_VERSION);
    std::string config_path = "/etc/mailseal/mailseal.toml";

    auto* serve_cmd = app.add_subcommand("serve", "Run the LMTP server in the foreground");
    serve_cmd->add_option("-c,--config", config_path, "Configuration file")->capture_default_str();
    bool allow_root = false;
    serve_cmd->add_flag("--allow-root", allow_root,
                        "Keep running as root when started as root without server.user (test "
                        "rigs, containers)");
    auto* check_cmd = app.add_subcommand(
        "check-config", "Validate the configuration and print the effective settings as TOML");
    check_cmd->add_option("-c,--config", config_path, "Configuration file")->capture_default_str();
    bool check_config_json = false;
    check_cmd->add_flag("--json", check_config_json,
                        "Print one JSON object: valid, and the effective configuration or the "
                        "error");
    bool check_config_quiet = false;
    check_cmd
        ->add_flag("-q,--quiet", check_config_quiet,
                   "Print nothing on success (for ExecStartPre=); errors still go to stderr")
        ->excludes("--json");
    auto* version_cmd = app.add_subcommand("version", "Print the version");

    std::string address;
    bool json = false;
    auto* lookup_cmd = app.add_subcommand(
        "lookup", "Show the SMIMEA and OPENPGPKEY lookups, every candidate key and the keys "
                  "sealing would use");
    lookup_cmd->add_option("-c,--config", config_path, "Configuration file")->capture_default_str();
    lookup_cmd->add_flag("--json", json, "Print one JSON object");
    lookup_cmd->add_option("address", address, "Recipient address")->required();

    tools::record_options record_opts;
    std::string record_config;
    tools::check_options check_opts;
    auto* check_keys_cmd = app.add_subcommand(
        "check", "Monitor published keys and TLSA records: one OK/WARNING/CRITICAL/UNKNOWN line "
                 "per checked name");
    check_keys_cmd->add_option("-c,--config", config_path, "Configuration file")
        ->capture_default_str();
    check_keys_cmd
        ->add_option("--warn-days,--days", check_opts.warn_days,
                     "Warn this many days before a certificate or key expires")
        ->capture_default_str()
        ->check(CLI::Range(0, 36500));
    auto* all_flag = check_keys_cmd->add_flag("--all", check_opts.all,
                                              "Every address in the local store or with a Maildir");
    auto* tlsa_check = check_keys_cmd->add_option(
        "--tlsa", check_opts.tlsa_host,
        "The TLSA records of this mail host (as MX records name it) against the certificate "
        "it presents");
    auto* host_flag = check_keys_cmd->add_flag(
        "--host", check_opts.host,
        "Everything this host depends on: every local domain's MX, every MX host's TLSA, every "
        "address");
    check_keys_cmd->add_option("--port", check_opts.port, "The TLSA port (25)");
    auto* cert_option = check_keys_cmd->add_option(
        "--cert", check_opts.cert,
        "The certificate chain file the server presents; default: Postfix's (postconf)");
    auto* probe_flag = check_keys_cmd
                           ->add_flag("--probe", check_opts.probe,
                                      "Take the chain a live STARTTLS handshake presents")
                           ->excludes(cert_option);
    check_keys_cmd->add_option("--postfix-config", check_opts.postfix_config,
                               "Postfix's configuration directory (postconf -c)");
    auto* next_option = check_keys_cmd->add_option(
        "--next", check_opts.next, "The certificate chain staged to replace the current one");
    std::optional<std::filesystem::path> gate_file;
    auto* gate_option =
        check_keys_cmd
            ->add_option("--gate", gate_file,
                         "Exit 0 only when this next certificate's key is published, validated "
                         "and visible for twice the TTL (for renewal hooks)")
            ->needs(tlsa_check)
            ->excludes(next_option)
            ->excludes(host_flag);
    std::string at_text;
    check_keys_cmd->add_option("--at", at_text,
                               "Judge as of this time: 2027-01-31, 2027-01-31T12:00:00Z, +30d, "
                               "+12h");
    check_keys_cmd->add_flag("--json", check_opts.json, "Print one JSON object");
    check_keys_cmd->add_option("--prometheus", check_opts.prometheus,
                               "Also write the results to this node_exporter textfile");
    check_keys_cmd
        ->add_option("--state-file", check_opts.state_file,
                     "Where the first sighting of each TLSA record is kept")
        ->capture_default_str();
    check_keys_cmd->add_option("addresses", check_opts.addresses, "Addresses to check")
        ->excludes(all_flag)
        ->excludes(host_flag);
    check_keys_cmd->callback([&] {
        if (!check_opts.all && !check_opts.host && check_opts.addresses.empty() &&
            check_opts.tlsa_host.empty()) {
            throw CLI::ValidationError("check", "name addresses, --all, --tlsa HOST or --host");
        }
        if (check_opts.tlsa_host.empty() && !check_opts.host &&
            (cert_option->count() > 0 || probe_flag->count() > 0 || next_option->count() > 0)) {
            throw CLI::ValidationError("check", "--cert, --probe and --next go with --tlsa or "
                                                "--host");
        }
        if (gate_option->count() > 0) {
            check_opts.next = gate_file;
            check_opts.gate = true;
        }
        if (!at_text.empty()) {
            check_opts.at = tools::parse_when(at_text, std::chrono::system_clock::now());
            if (!check_opts.at) {
                throw CLI::ValidationError("--at", "not a time: " + at_text +
                                                       " (2027-01-31, 2027-01-31T12:00:00Z, "
                                                       "+30d, +12h)");
            }
        }
    });

    auto* record_cmd = app.add_subcommand(
        "record", "Print the SMIMEA or OPENPGPKEY zone-file lines that publish a key for an "
                  "address");
    record_cmd
        ->add_option("--key,--cert", record_opts.key,
                     "PEM or DER certificate, or OpenPGP public key (armoured or binary)")
        ->required();
    record_cmd->add_option("--usage", record_opts.usage, "SMIMEA certificate usage (0..3; 3)");
    record_cmd->add_option("--selector", record_opts.selector, "SMIMEA selector (0..1; 0)");
    record_cmd->add_option("--matching", record_opts.matching_type,
                           "SMIMEA matching type (0..2; 0)");
    record_cmd->add_option("--ttl", record_opts.ttl, "TTL of the records")->capture_default_str();
    record_cmd->add_flag("--json", record_opts.json, "Print one JSON object");
    record_cmd->add_option("-c,--config", record_config,
                           "Configuration file (for the recipient delimiter); default: built-in "
                           "defaults");
    record_cmd->add_option("address", address, "Address the key is for");
    tools::tlsa_record_options tlsa_opts;
    bool tlsa = false;
    auto* tlsa_flag = record_cmd->add_flag(
        "--tlsa", tlsa,
        "The mail server's TLSA records (3 1 1) for the certificate --cert names, instead");
    record_cmd
        ->add_option("--next", tlsa_opts.next,
                     "With --tlsa: the certificate that will replace the current one")
        ->needs(tlsa_flag);
    record_cmd
        ->add_option("--host", tlsa_opts.host,
                     "With --tlsa: the host name the MX records name; default "
                     "server.hostname")
        ->needs(tlsa_flag);
    record_cmd->add_option("--port", tlsa_opts.port, "With --tlsa: the port (25)")
        ->needs(tlsa_flag);
    record_cmd->callback([&] {
        if (tlsa != address.empty()) {
            throw CLI::ValidationError("record", tlsa ? "--tlsa takes no address"
                                                      : "name the address the key is for");
        }
    });

    tools::seal_options seal_opts;
    auto* seal_cmd = app.add_subcommand(
        "seal", "Seal one message from stdin to stdout exactly as delivery would");
    std::string seal_config;
    seal_cmd->add_option("-c,--config", seal_config,
                         "Configuration file (policy, key discovery); default: built-in defaults");
    seal_cmd->add_option("--to", seal_opts.to, "Recipient address")->required();
    seal_cmd->add_option("--key,--cert", seal_opts.keys,
                         "Certificate (PEM, DER) or OpenPGP public key to seal to (repeatable); "
                         "default: key discovery");

    tools::deliver_options deliver_opts;
    auto* deliver_cmd = app.add_subcommand(
        "deliver", "LDA mode: deliver one message from stdin (for pipe(8) or mailbox_command)");
    deliver_cmd->add_option("-c,--config", config_path, "Configuration file")
        ->capture_default_str();
    deliver_cmd->add_option("-f,--from", deliver_opts.from, "Envelope sender (\"\" for <>)")
        ->required();
    deliver_cmd->add_option("-t,--to", deliver_opts.to, "Recipient (repeatable)")->required();

    auto* test_message_cmd = app.add_subcommand(
        "test-message", "Deliver a short sealed test message to an address's mailbox");
    test_message_cmd->add_option("-c,--config", config_path, "Configuration file")
        ->capture_default_str();
    test_message_cmd->add_option("address", address, "Recipient address")->required();

    tools::reseal_options reseal_opts;
    auto* reseal_cmd = app.add_subcommand(
        "reseal", "Seal the plaintext messages already stored in users' Maildirs");
    reseal_cmd->add_option("-c,--config", config_path, "Configuration file")->capture_default_str();
    reseal_cmd->add_flag("--dry-run", reseal_opts.dry_run,
                         "Count what would change; write nothing");
    reseal_cmd->add_flag("--json", reseal_opts.json, "Print one JSON object");
    reseal_cmd
        ->add_option("--folders", reseal_opts.folders,
                     "Folder name globs to reseal, comma-separated or repeated (INBOX, Sent, "
                     "Archive*); default: every folder but Drafts")
        ->allow_extra_args(false)
        ->delimiter(',');
    reseal_cmd
        ->add_option("--max-rate", reseal_opts.max_rate,
                     "Messages per second at most, so delivery is not starved; 0: no limit")
        ->check(CLI::NonNegativeNumber);
    reseal_cmd->add_flag("--purge-dovecot-cache", reseal_opts.purge_dovecot_cache,
                         "Afterwards run doveadm mailbox cache purge for each user's folders, "
                         "so Dovecot's cache keeps nothing of the plaintext messages");
    reseal_cmd->add_flag("--since-last-run", reseal_opts.since_last_run,
                         "Only files put in place since the last complete run with this option, "
                         "in folders changed since (for a timer)");
    reseal_cmd
        ->add_option("--state-file", reseal_opts.state_file,
                     "Where --since-last-run records the time of the last complete run")
        ->capture_default_str();
    auto* reseal_all =
        reseal_cmd->add_flag("--all", reseal_opts.all, "Every mailbox under mailbox.maildir");
    reseal_cmd->add_option("addresses", reseal_opts.addresses, "Users' addresses")
        ->excludes(reseal_all);
    reseal_cmd->callback([&] {
        if (!reseal_opts.all && reseal_opts.addresses.empty()) {
            throw CLI::ValidationError("reseal", "name addresses or --all");
        }
    });

    // Argument errors exit 64 (EX_USAGE) with one "mailseal:" line, as doveadm and postconf
    // do, rather than with CLI11's own codes; help and --version exit 0.
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::string word = argc > 1 ? argv[1] : "";
        bool known = false;
        for (const auto* sub : app.get_subcommands({})) {
            known = known || sub->check_name(word);
        }
        if (argc == 1) {
            std::cerr << "mailseal: a command is required (mailseal --help lists the commands)\n";
        } else if (word.size() > 1 && word.front() == '-' && word != "--version" &&
                   word != "--help" && word != "-h") {
            std::cerr << "mailseal: unknown option '" << util::printable(word)
                      << "' before the command (mailseal --help lists the commands)\n";
        } else if (!word.empty() && word.front() != '-' && !known) {
            std::cerr << "mailseal: unknown command '" << util::printable(word)
                      << "' (mailseal --help lists the commands)\n";
        } else {
            std::cerr << "mailseal: " << util::printable(e.what())
                      << " (mailseal COMMAND --help shows its options)\n";
        }
        return EX_USAGE;
    }

    if (serve_cmd->parsed()) {
        return serve(config_path, allow_root);
    }
    if (check_cmd->parsed()) {
        return check_config(config_path, check_config_json, check_config_quiet);
    }
    if (lookup_cmd->parsed()) {
        auto cfg = load(config_path, config::purpose::tool);
        if (!cfg) {
            return EX_CONFIG;
        }
        // The report goes to stdout; only warnings and errors belong on stderr here.
        log::set_level(config::log_level::warning);
        return tools::lookup(*cfg, address, json, std::cout, std::cerr);
    }
    if (check_keys_cmd->parsed()) {
        auto cfg = load(config_path, config::purpose::tool);
        if (!cfg) {
            // A monitoring check that cannot run is UNKNOWN, whatever stopped it.
            return tools::cannot_run(check_opts.json, "configuration",
                                     config_path + " does not load (see stderr)", std::cout);
        }
        // A probed server that closes first must not end the check with SIGPIPE.
        std::signal(SIGPIPE, SIG_IGN);
        log::set_level(config::log_level::warning);
        return tools::check(*cfg, check_opts, std::cout, std::cerr);
    }
    if (record_cmd->parsed()) {
        auto cfg = load_if_given(record_config);
        if (!cfg) {
            return EX_CONFIG;
        }
        if (tlsa) {
            tlsa_opts.current = record_opts.key;
            tlsa_opts.ttl = record_opts.ttl;
            tlsa_opts.json = record_opts.json;
            return tools::record_tlsa(*cfg, tlsa_opts, std::cout, std::cerr);
        }
        return tools::record(*cfg, address, record_opts, std::cout, std::cerr);
    }
    if (seal_cmd->parsed()) {
        auto cfg = load_if_given(seal_config);
        if (!cfg) {
            return EX_CONFIG;
        }
        log::set_level(config::log_level::warning);
        // Messages can be large: unsynchronised streams read and write in big blocks.
        std::ios_base::sync_with_stdio(false);
        return tools::seal(*cfg, seal_opts, std::cin, std::cout, std::cerr);
    }
    if (reseal_cmd->parsed()) {
        auto cfg = load(config_path, config::purpose::tool);
        if (!cfg) {
            return EX_CONFIG;
        }
        // The per-user lines go to stdout; the log keeps its level for the reseal lines.
        return tools::reseal(*cfg, reseal_opts, std::cout, std::cerr);
    }
    if (deliver_cmd->parsed() || test_message_cmd->parsed()) {
        auto cfg = load_for_local_delivery(config_path);
        if (!cfg) {
            return EX_CONFIG;
        }
        if (test_message_cmd->parsed()) {
            return tools::test_message(*cfg, address, std::cout, std::cerr);
        }
        std::ios_base::sync_with_stdio(false);
        return tools::deliver(*cfg, deliver_opts, std::cin, std::cerr);
    }
    if (version_cmd->parsed()) {
        std::cout << "mailseal " << MAILSEAL_VERSION << '\n';
    }
    return EX_OK;
}
