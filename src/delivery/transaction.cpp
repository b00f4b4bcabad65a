// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <ctime>

#include <mailseal/delivery/transaction.hpp>
#include <mailseal/log/log.hpp>
#include <mailseal/metrics/metrics.hpp>

namespace mailseal::delivery {
namespace {

/// Header field values must not carry line breaks or controls from the client.
std::string header_safe(std::string_view value) {
    std::string out(value);
    for (char& c : out) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) {
            c = '?';
        }
    }
    return out;
}

/// RFC 5322 date-time in local time, e.g. "Sun, 22 Nov 2026 07:50:00 +0100".
std::string rfc5322_date(std::chrono::system_clock::time_point now) {
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[64];
    // The daemon never calls setlocale(), so %a and %b are the C locale's English names.
    std::size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S %z", &tm);
    return std::string(buf, n);
}

} // namespace

lmtp::reply to_reply(const store::failure& failure, config::quota_reply over_quota) {
    switch (failure.kind) {
    case store::error_kind::no_space:
        return lmtp::replies::disk_full;
    case store::error_kind::over_quota:
        return over_quota == config::quota_reply::permanent
                   ? lmtp::reply(lmtp::replies::over_quota_permanent)
                   : lmtp::reply(lmtp::replies::over_quota_temporary);
    case store::error_kind::missing:
        return lmtp::replies::unknown_recipient;
    case store::error_kind::permission:
    case store::error_kind::io:
        return lmtp::replies::local_error;
    }
    return lmtp::replies::local_error;
}

std::string received_field(const lmtp::envelope& env, const lmtp::address& recipient,
                           const transaction_info& info,
                           std::chrono::system_clock::time_point now) {
    // RFC 3848 / RFC 6531 protocol types for the "with" clause.
    std::string_view protocol = !info.protocol.empty()    ? std::string_view(info.protocol)
                                : env.parameters.smtputf8 ? "UTF8LMTP"
                                                          : "LMTP";
    // A local delivery (no LHLO) has no "from" clause, as Postfix's local(8) writes it.
    std::string from = env.lhlo_name.empty() ? std::string()
                                             : "from " + header_safe(env.lhlo_name) + " (" +
                                                   header_safe(info.peer) + ")\r\n\t";
    return "Received: " + from + "by " + header_safe(info.hostname) + " (mailseal) with " +
           std::string(protocol) + " id " + info.transaction_id + "\r\n\tfor <" +
           header_safe(recipient.str()) + ">; " + rfc5322_date(now) + "\r\n";
}

std::string trace_headers(const lmtp::envelope& env, const lmtp::address& recipient,
                          const transaction_info& info, std::chrono::system_clock::time_point now) {
    std::string out;
    out += "Return-Path: " + header_safe(lmtp::path_text(env.sender)) + "\r\n";
    // The bare address, as Postfix, Dovecot and qmail write it: Postfix's mail loop detection
    // compares Delivered-To: values with the recipient address.
    out += "Delivered-To: " + header_safe(recipient.str()) + "\r\n";
    return out + received_field(env, recipient, info, now);
}

struct transaction::state final : seal::copy_sink {
    struct file_state {
        recipient::recipient rcpt;
        /// The copy being written: a Maildir file, or a transaction with the next hop.
        std::optional<store::delivery> file;
        std::optional<relay::copy_transfer> transfer;
        /// The final reply once finish() ran (or a marker after abandon()).
        std::optional<lmtp::reply> outcome;
        /// For the log: a store failure (step, path, errno) or the file name in new/.
        std::string detail;
    };

    state(const config::config& cfg, store::name_generator& generator, lmtp::envelope env,
          transaction_info ti, const std::vector<recipient::recipient>& recipients,
          relay::next_hop* hop)
        : config(cfg), names(generator), next_hop(hop), envelope(std::move(env)),
          info(std::move(ti)), started(std::chrono::steady_clock::now()),
          sealer(policies_for(cfg, recipients), cfg.seal.protected_subject, *this) {}

    static std::vector<config::seal_policy>
    policies_for(const config::config& cfg, const std::vector<recipient::recipient>& recipients) {
        std::vector<config::seal_policy> out;
        for (const auto& r : recipients) {
            out.push_back(cfg.seal.policy_for(r.user, r.domain));
        }
        return out;
    }

    std::variant<std::string, lmtp::reply> open(std::size_t index) override {
        auto& f = files.at(index);
        auto now = std::chrono::system_clock::now();
        if (next_hop != nullptr) {
            auto begun = next_hop->begin(envelope, f.rcpt.written);
            if (auto* refused = std::get_if<relay::outcome>(&begun)) {
                f.detail = std::move(refused->detail);
                return std::move(refused->reply);
            }
            f.transfer.emplace(std::move(std::get<relay::copy_transfer>(begun)));
            return received_field(envelope, f.rcpt.written, info, now);
        }
        if (!f.rcpt.maildir) {
            // Verification refuses such recipients; only a caller's mistake gets here.
            f.detail = "no mailbox for recipient";
            return lmtp::reply(lmtp::replies::unknown_recipient);
        }
        store::maildir_options options;
        if (config.mailbox.on_missing == config::missing_maildir::create) {
            options.create_mode = config.mailbox.create_mode;
        }
        options.drop_from_page_cache = config.mailbox.page_cache == config::page_cache_policy::drop;
        auto begun = store::delivery::begin(*f.rcpt.maildir, names.next(now), options);
        if (auto* failure = std::get_if<store::failure>(&begun)) {
            f.detail = failure->str();
            return to_reply(*failure, config.mailbox.over_quota);
        }
        f.file.emplace(std::move(std::get<store::delivery>(begun)));
        return trace_headers(envelope, f.rcpt.written, info, now);
    }

    std::string_view line_end(std::size_t index) const override {
        // The next hop takes CRLF.
        return files.at(index).file ? store::maildir_line_end : "\r\n";
    }

    std::optional<lmtp::reply> write(std::size_t index, std::string_view bytes) override {
        auto& f = files.at(index);
        if (f.transfer) {
            if (auto failed = f.transfer->write(bytes)) {
                f.detail = std::move(failed->detail);
                f.transfer.reset();
                return std::move(failed->reply);
            }
            return std::nullopt;
        }
        if (!f.file) {
            return lmtp::reply(lmtp::replies::local_error);
        }
        return stored(f, f.file->write(bytes));
    }

    std::optional<lmtp::reply> write_taking(std::size_t index, std::string& bytes) override {
        auto& f = files.at(index);
        if (f.transfer || !f.file) {
            return copy_sink::write_taking(index, bytes);
        }
        return stored(f, f.file->write_taking(bytes));
    }

    /// The reply that ends `f` when its file could not take a write, which then goes.
    std::optional<lmtp::reply> stored(file_state& f, std::optional<store::failure> failure) {
        if (!failure) {
            return std::nullopt;
        }
        f.detail = failure->str();
        f.file.reset(); // its destructor removes the tmp/ file
        return to_reply(*failure, config.mailbox.over_quota);
    }

    const config::config& config;
    store::name_generator& names;
    relay::next_hop* next_hop;
    lmtp::envelope envelope;
    transaction_info info;
    std::chrono::steady_clock::time_point started;
    std::uint64_t body_size = 0;
    std::vector<file_state> files;
    seal::message_sealer sealer;
};

namespace {

/// The delivery line; `reply` is null for an abandoned delivery (no reply was given). Never
/// message content: addresses, decisions, sizes and times only.
/// What happened to the recipient, in the words of metrics::decision_names.
std::string_view decision_word(const seal::message_sealer::recipient_state& r,
                               const lmtp::reply* reply) {
    if (reply == nullptr) {
        return "abandoned";
    }
    if (!r.decided) {
        return "failed";
    }
    bool stored = r.decided->what == seal::action::seal ||
                  r.decided->what == seal::action::passthrough ||
                  r.decided->what == seal::action::plain;
    return stored && !reply->positive() ? std::string_view("failed")
                                        : seal::to_string(r.decided->what);
}

void log_outcome(const transaction::state& st, std::size_t index, const lmtp::reply* reply) {
    const auto& f = st.files.at(index);
    const auto& r = st.sealer.recipient(index);
    bool sealed_ok =
        r.decided && r.decided->what == seal::action::seal && reply && reply->positive();
    metrics::global().delivery(decision_word(r, reply), reply ? reply->code() : 0,
                               sealed_ok ? st.body_size : 0,
                               std::chrono::steady_clock::now() - st.started);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - st.started)
                  .count();
    std::string code;
    std::string_view result = "abandoned";
    if (reply) {
        code = std::to_string(reply->code());
        if (reply->enhanced()) {
            code += " " + reply->enhanced()->str();
        }
        result = reply->positive() ? "delivered" : (reply->transient() ? "deferred" : "bounced");
    }
    auto level = reply && reply->positive() ? config::log_level::info : config::log_level::warning;
    bool sealed = r.decided && r.decided->what == seal::action::seal;
    std::string detail = f.detail;
    if (!r.detail.empty() && r.detail != f.detail) {
        detail = detail.empty() ? r.detail : r.detail + "; " + detail;
    }
    log::write(
        level, "delivery",
        {{"session", st.info.session_id},
         {"txn", st.info.transaction_id},
         {"from", lmtp::path_text(st.envelope.sender)},
         {"rcpt", "<" + f.rcpt.written.str() + ">"},
         {"keys_outcome", r.keys ? std::string(dns::to_string(r.keys->outcome)) : "none"},
         {"decision", r.decided ? std::string(seal::to_string(r.decided->what)) : "none"},
         {"reason", r.decided ? r.decided->reason : ""},
         {"format",
          sealed && r.keys->format ? std::string(config::to_string(r.keys->format->id())) : ""},
         {"keys", sealed ? std::to_string(r.keys->keys.size()) : "0"},
         {"cipher", sealed && r.writer ? std::string(r.writer->cipher()) : ""},
         {"result", result},
         {"reply", code},
         {"size", std::to_string(st.body_size)},
         {"ms", std::to_string(ms)},
         {"detail", detail}});
}

} // namespace

transaction::transaction(const config::config& cfg, store::name_generator& names,
                         lmtp::envelope env, std::vector<recipient::recipient> recipients,
                         transaction_info info, relay::next_hop* hop) {
    state_ = std::make_unique<state>(cfg, names, std::move(env), std::move(info), recipients, hop);
    for (auto& r : recipients) {
        state_->files.push_back(state::file_state{std::move(r), {}, {}, {}, {}});
    }
}

transaction::~transaction() = default;
transaction::transaction(transaction&&) noexcept = default;

std::size_t transaction::recipients() const {
    return state_->files.size();
}

void transaction::provide_keys(std::size_t index, seal::key_set keys) {
    state_->sealer.provide_keys(index, std::move(keys));
}

bool transaction::has_keys(std::size_t index) const {
    const auto& r = state_->sealer.recipient(index);
    return r.keys.has_value() || r.refusal.has_value();
}

bool transaction::needs_keys() const {
    return state_->sealer.needs_keys();
}

void transaction::write(std::string_view bytes) {
    state_->body_size += bytes.size();
    state_->sealer.write(bytes);
}

void transaction::end_of_data() {
    state_->sealer.end_of_data();
}

lmtp::reply transaction::finish(std::size_t index) {
    auto& st = *state_;
    auto& f = st.files.at(index);
    const auto& r = st.sealer.recipient(index);
    if (r.refusal) {
        f.file.reset();
        f.transfer.reset();
        f.outcome = *r.refusal;
    } else if (f.transfer) {
        auto verdict = f.transfer->finish();
        f.outcome = std::move(verdict.reply);
        f.detail = std::move(verdict.detail);
        f.transfer.reset();
    } else if (f.file) {
        auto committed = f.file->commit();
        if (auto* failure = std::get_if<store::failure>(&committed)) {
            f.outcome = to_reply(*failure, st.config.mailbox.over_quota);
            f.detail = failure->str();
        } else {
            f.outcome = lmtp::replies::delivered;
            f.detail = std::get<std::filesystem::path>(committed).filename().string();
        }
        f.file.reset();
    } else {
        // end_of_data() decides every copy; reaching here without one is a local error.
        f.outcome = lmtp::replies::local_error;
        f.detail = "no copy was produced";
    }
    log_outcome(st, index, &*f.outcome);
    return *f.outcome;
}

void transaction::abandon(std::string_view reason) {
    auto& st = *state_;
    for (std::size_t i = 0; i < st.files.size(); ++i) {
        auto& f = st.files[i];
        if (f.outcome) {
            continue;
        }
        if (f.file) {
            f.file->abandon();
            f.file.reset();
        }
        // Closing the connection mid-DATA makes the next hop drop its copy.
        f.transfer.reset();
        f.detail = std::string(reason);
        log_outcome(st, i, nullptr);
        // No reply will be given; marked so a second abandon() does not log it again.
        f.outcome = lmtp::replies::local_error;
    }
}

} // namespace mailseal::delivery
