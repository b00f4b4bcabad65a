// SPDX-License-Identifier: Apache-2.0
#include <array>
#include <chrono>
#include <ctime>
#include <istream>
#include <ostream>
#include <sstream>
#include <sysexits.h>
#include <unistd.h>
#include <utility> // before Asio: Boost 1.81's awaitable.hpp uses std::exchange

#include <mailseal/delivery/mailbox.hpp>
#include <mailseal/delivery/transaction.hpp>
#include <mailseal/discovery/discovery.hpp>
#include <mailseal/lmtp/address.hpp>
#include <mailseal/recipient/recipient.hpp>
#include <mailseal/tools/tools.hpp>
#include <mailseal/util/ascii.hpp>
#include <mailseal/util/wipe.hpp>

#include "discovery_session.hpp"

namespace mailseal::tools {
namespace {

/// The exit status for one recipient's reply, as Postfix's pipe(8) and local(8) read
/// sysexits (Postfix's sys_exits.c: 75 defers, the others bounce).
int exit_status_for(const lmtp::reply& r) {
    if (r.positive()) {
        return EX_OK;
    }
    if (r.transient()) {
        return EX_TEMPFAIL;
    }
    const auto& e = r.enhanced();
    if (e && e->subject == 1 && e->detail == 1) {
        return EX_NOUSER; // 5.1.1
    }
    if (e && e->subject == 2) {
        return EX_CANTCREAT; // 5.2.x: the mailbox cannot take the message (quota)
    }
    if (e && e->subject == 7) {
        return EX_NOPERM; // 5.7.1: policy refuses to store the message in clear
    }
    if (e && (e->subject == 3 || e->subject == 6)) {
        return EX_DATAERR; // 5.3.4 too big, 5.6.x content
    }
    return EX_UNAVAILABLE;
}

/// Temporary beats everything (the MTA retries, nothing is lost); then the first permanent.
int combine(int worst, int next) {
    if (worst == EX_TEMPFAIL || next == EX_TEMPFAIL) {
        return EX_TEMPFAIL;
    }
    return worst != EX_OK ? worst : next;
}

} // namespace

int deliver(const config::config& cfg, const deliver_options& options, std::istream& in,
            std::ostream& err) {
    auto sender = lmtp::parse_reverse_path(
        options.from.empty() || options.from == "<>" ? "<>" : "<" + options.from + ">", true);
    if (!sender) {
        err << "mailseal: deliver: not a sender address: " << util::printable(options.from) << "\n";
        return EX_USAGE;
    }
    lmtp::envelope env;
    env.sender = *sender;
    env.parameters.smtputf8 = true;
    int status = EX_OK;
    std::vector<std::string> diagnostics;
    std::vector<recipient::recipient> recipients;
    for (const auto& text : options.to) {
        auto rcpt = lmtp::parse_forward_path("<" + text + ">", true);
        if (!rcpt) {
            err << "mailseal: deliver: not a recipient address: " << util::printable(text) << "\n";
            return EX_USAGE;
        }
        auto verdict = delivery::verify_recipient(cfg, *rcpt);
        if (auto* refusal = std::get_if<lmtp::reply>(&verdict)) {
            diagnostics.push_back("<" + rcpt->str() + "> " + refusal->summary());
            status = combine(status, exit_status_for(*refusal));
            continue;
        }
        env.recipients.push_back(std::move(*rcpt));
        recipients.push_back(std::move(std::get<recipient::recipient>(verdict)));
    }

    if (!env.recipients.empty()) {
        std::vector<seal::key_set> found(env.recipients.size());
        int setup = run_discovery(
            cfg, err, [&](discovery::key_discovery& discovery) -> boost::asio::awaitable<void> {
                for (std::size_t i = 0; i < recipients.size(); ++i) {
                    found[i] = (co_await discovery.find(recipients[i])).chosen;
                }
            });
        if (setup != EX_OK) {
            return setup;
        }
        std::string id = "deliver-" + std::to_string(::getpid());
        store::name_generator names(cfg.server.hostname);
        // [store] kind = "lmtp": the copies go to the next hop, as the daemon sends them.
        std::optional<relay::next_hop> hop;
        if (cfg.store.kind == config::store_kind::lmtp && cfg.store.next_hop) {
            hop.emplace(*cfg.store.next_hop, cfg.store.timeout, cfg.store.data_done_timeout, 0,
                        cfg.server.hostname);
        }
        delivery::transaction txn(cfg, names, env, recipients,
                                  {id, id + ".1", "local", cfg.server.hostname, "local"},
                                  hop ? &*hop : nullptr);
        for (std::size_t i = 0; i < found.size(); ++i) {
            txn.provide_keys(i, std::move(found[i]));
        }
        std::array<char, 64 * 1024> buffer;
        std::uint64_t size = 0;
        bool too_big = false;
        while (in) {
            in.read(buffer.data(), buffer.size());
            auto n = static_cast<std::size_t>(in.gcount());
            size += n;
            if (size > cfg.limits.message_size) {
                too_big = true;
                break;
            }
            txn.write(std::string_view(buffer.data(), n));
            ::explicit_bzero(buffer.data(), n);
        }
        if (too_big || in.bad()) {
            txn.abandon(too_big ? "message too big" : "cannot read the message");
            lmtp::reply why = too_big ? lmtp::reply(lmtp::replies::message_too_big)
                                      : lmtp::reply(lmtp::replies::local_error,
                                                    "Cannot read the message from stdin");
            diagnostics.push_back(why.summary());
            status = combine(status, too_big ? EX_DATAERR : EX_IOERR);
        } else {
            txn.end_of_data();
            for (std::size_t i = 0; i < env.recipients.size(); ++i) {
                auto reply = txn.finish(i);
                if (!reply.positive()) {
                    diagnostics.push_back("<" + env.recipients[i].str() + "> " + reply.summary());
                }
                status = combine(status, exit_status_for(reply));
            }
        }
    }
    // One line: pipe(8) puts it in the bounce or the deferral reason.
    if (!diagnostics.empty()) {
        err << "mailseal: ";
        for (std::size_t i = 0; i < diagnostics.size(); ++i) {
            err << (i == 0 ? "" : "; ") << util::printable(diagnostics[i]);
        }
        err << "\n";
    }
    return status;
}

int test_message(const config::config& cfg, const std::string& address, std::ostream& out,
                 std::ostream& err) {
    auto rcpt = lmtp::parse_forward_path("<" + address + ">", true);
    if (!rcpt || rcpt->domain.empty()) {
        err << "mailseal: test-message: not an address: " << util::printable(address) << "\n";
        return EX_USAGE;
    }
    // The point is a sealed copy: without a usable key nothing is stored (550 5.7.1), whatever
    // the configured policy would do with real mail.
    config::config strict = cfg;
    strict.seal.defaults.on_no_key = config::no_key_action::reject;
    for (auto& rule : strict.seal.rules) {
        rule.on_no_key.reset();
    }
    auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&now, &tm);
    char date[64];
    std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    std::string domain = util::ascii_lower(rcpt->domain);
    std::string message =
        "From: mailseal <postmaster@" + domain + ">\r\nTo: <" + rcpt->str() +
        ">\r\nSubject: mailseal test message\r\nDate: " + date + "\r\nMessage-ID: <test-" +
        std::to_string(now) + "." + std::to_string(::getpid()) + "@" + cfg.server.hostname +
        ">\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "If you can read this, your mail client opens the messages mailseal seals to your\r\n"
        "key: mail stored for you on " +
        cfg.server.hostname + " is readable with your private key only.\r\n";
    std::istringstream in(message);
    int status = deliver(strict, {"", {rcpt->str()}}, in, err);
    if (status == EX_OK) {
        out << "sealed test message delivered to <" << util::printable(rcpt->str()) << ">\n";
    }
    return status;
}

} // namespace mailseal::tools
