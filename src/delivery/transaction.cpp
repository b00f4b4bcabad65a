#include <ctime>

#include <mailseal/delivery/transaction.hpp>
#include <mailseal/log/log.hpp>

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

std::string angle(const std::optional<lmtp::address>& a) {
    return a ? "<" + a->str() + ">" : std::string("<>");
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

std::string_view to_string(disposition d) {
    switch (d) {
    case disposition::as_received:
        return "as-received";
    }
    return "unknown";
}

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

std::string trace_headers(const lmtp::envelope& env, const lmtp::address& recipient,
                          const transaction_info& info, std::chrono::system_clock::time_point now) {
    // RFC 3848 / RFC 6531 protocol types for the "with" clause.
    std::string_view protocol = env.parameters.smtputf8 ? "UTF8LMTP" : "LMTP";
    std::string address = header_safe(recipient.str());
    std::string out;
    out += "Return-Path: " + header_safe(angle(env.sender)) + "\r\n";
    // The bare address, as Postfix, Dovecot and qmail write it: Postfix's mail loop detection
    // compares Delivered-To: values with the recipient address.
    out += "Delivered-To: " + address + "\r\n";
    out += "Received: from " + header_safe(env.lhlo_name) + " (" + header_safe(info.peer) +
           ")\r\n\tby " + header_safe(info.hostname) + " (mailseal) with " + std::string(protocol) +
           " id " + info.transaction_id + "\r\n\tfor <" + address + ">; " + rfc5322_date(now) +
           "\r\n";
    return out;
}

transaction::transaction(const config::config& cfg, store::name_generator& names,
                         lmtp::envelope env, transaction_info info)
    : config_(cfg), envelope_(std::move(env)), info_(std::move(info)),
      started_(std::chrono::steady_clock::now()) {
    auto now = std::chrono::system_clock::now();
    store::maildir_options options;
    if (cfg.mailbox.on_missing == config::missing_maildir::create) {
        options.create_mode = cfg.mailbox.create_mode;
    }
    recipients_.reserve(envelope_.recipients.size());
    for (const auto& address : envelope_.recipients) {
        auto& rcpt = recipients_.emplace_back(recipient_delivery{address, {}, {}, {}, {}});
        auto box = resolve(cfg, address);
        if (!box) {
            // Accepted at RCPT, so only a configuration change since then gets here.
            rcpt.outcome = lmtp::replies::unknown_recipient;
            rcpt.detail = "no mailbox for recipient";
            continue;
        }
        auto begun = store::delivery::begin(box->maildir, names.next(now), options);
        if (auto* failure = std::get_if<store::failure>(&begun)) {
            rcpt.outcome = to_reply(*failure, cfg.mailbox.over_quota);
            rcpt.detail = failure->str();
            continue;
        }
        rcpt.file.emplace(std::move(std::get<store::delivery>(begun)));
        if (auto failure = rcpt.file->write(trace_headers(envelope_, address, info_, now))) {
            fail(rcpt, *failure);
        }
    }
}

void transaction::fail(recipient_delivery& rcpt, const store::failure& failure) {
    rcpt.outcome = to_reply(failure, config_.mailbox.over_quota);
    rcpt.detail = failure.str();
    rcpt.file.reset(); // its destructor removes the tmp/ file
}

void transaction::write(std::string_view bytes) {
    body_size_ += bytes.size();
    for (auto& rcpt : recipients_) {
        if (!rcpt.file) {
            continue;
        }
        if (auto failure = rcpt.file->write(bytes)) {
            fail(rcpt, *failure);
        }
    }
}

lmtp::reply transaction::finish(std::size_t index) {
    auto& rcpt = recipients_.at(index);
    if (rcpt.file) {
        auto committed = rcpt.file->commit();
        if (auto* failure = std::get_if<store::failure>(&committed)) {
            fail(rcpt, *failure);
        } else {
            rcpt.outcome = lmtp::replies::delivered;
            rcpt.detail = std::get<std::filesystem::path>(committed).filename().string();
            rcpt.file.reset();
        }
    }
    log_outcome(rcpt, &*rcpt.outcome);
    return *rcpt.outcome;
}

void transaction::abandon(std::string_view reason) {
    for (auto& rcpt : recipients_) {
        if (rcpt.file) {
            rcpt.file->abandon();
            rcpt.file.reset();
            rcpt.detail = std::string(reason);
            log_outcome(rcpt, nullptr);
        }
    }
}

void transaction::log_outcome(const recipient_delivery& rcpt, const lmtp::reply* reply) const {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - started_)
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
    log::write(level, "delivery",
               {{"session", info_.session_id},
                {"txn", info_.transaction_id},
                {"from", angle(envelope_.sender)},
                {"rcpt", "<" + rcpt.address.str() + ">"},
                {"decision", to_string(rcpt.how)},
                {"result", result},
                {"reply", code},
                {"size", std::to_string(body_size_)},
                {"ms", std::to_string(ms)},
                {"detail", rcpt.detail}});
}

} // namespace mailseal::delivery
