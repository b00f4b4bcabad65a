// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <cstdio>

#include <mailseal/metrics/metrics.hpp>

namespace mailseal::metrics {
namespace {

constexpr auto relaxed = std::memory_order_relaxed;

template <std::size_t N>
std::size_t index_of(const std::array<std::string_view, N>& names, std::string_view name) {
    return static_cast<std::size_t>(std::find(names.begin(), names.end(), name) - names.begin());
}

std::string number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

/// "1234567.000042": exact at any size, where %g would round past six digits.
std::string microseconds_as_seconds(std::uint64_t us) {
    char fraction[8];
    std::snprintf(fraction, sizeof fraction, "%06llu",
                  static_cast<unsigned long long>(us % 1000000));
    return std::to_string(us / 1000000) + "." + fraction;
}

template <std::size_t N>
void count(std::array<std::atomic<std::uint64_t>, N>& counters,
           const std::array<std::string_view, N>& names, std::string_view name) {
    auto i = index_of(names, name);
    if (i < counters.size()) {
        counters[i].fetch_add(1, relaxed);
    }
}

template <std::size_t N>
void render_counters(std::string& out, std::string_view metric, std::string_view label,
                     const std::array<std::atomic<std::uint64_t>, N>& counters,
                     const std::array<std::string_view, N>& names) {
    for (std::size_t i = 0; i < N; ++i) {
        out.append(metric).append("{").append(label).append("=\"").append(names[i]);
        out.append("\"} ").append(std::to_string(counters[i].load(relaxed))).append("\n");
    }
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

} // namespace

void histogram::observe(std::chrono::steady_clock::duration d) {
    double seconds = std::chrono::duration<double>(d).count();
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        if (seconds <= bounds[i]) {
            buckets_[i].fetch_add(1, relaxed);
        }
    }
    count_.fetch_add(1, relaxed);
    sum_us_.fetch_add(static_cast<std::uint64_t>(
                          std::chrono::duration_cast<std::chrono::microseconds>(d).count()),
                      relaxed);
}

void histogram::render(std::string& out, std::string_view name, std::string_view help) const {
    header(out, name, "histogram", help);
    std::string base(name);
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        out += base + "_bucket{le=\"" + number(bounds[i]) + "\"} " +
               std::to_string(buckets_[i].load(relaxed)) + "\n";
    }
    auto count = count_.load(relaxed);
    out += base + "_bucket{le=\"+Inf\"} " + std::to_string(count) + "\n";
    out += base + "_sum " + microseconds_as_seconds(sum_us_.load(relaxed)) + "\n";
    out += base + "_count " + std::to_string(count) + "\n";
}

void registry::delivery(std::string_view decision, int reply_code, std::uint64_t sealed_bytes,
                        std::chrono::steady_clock::duration latency) {
    auto i = index_of(decision_names, decision);
    if (i < decisions_.size()) {
        decisions_[i].fetch_add(1, relaxed);
    }
    if (reply_code >= 200 && reply_code < 600 && reply_code / 100 != 3) {
        replies_[reply_code < 300 ? 0 : reply_code < 500 ? 1 : 2].fetch_add(1, relaxed);
    }
    sealed_bytes_.fetch_add(sealed_bytes, relaxed);
    if (reply_code != 0) {
        delivery_seconds_.observe(latency);
    }
}

void registry::declare_key_format(std::string_view format) {
    std::lock_guard lock(lookups_mutex_);
    lookups_.try_emplace(std::string(format));
}

void registry::key_lookup(std::string_view format, std::string_view outcome) {
    auto i = index_of(outcome_names, outcome);
    std::lock_guard lock(lookups_mutex_);
    auto& counts = lookups_.try_emplace(std::string(format)).first->second;
    if (i < counts.size()) {
        ++counts[i];
    }
}

void registry::key_discovery(std::chrono::steady_clock::duration latency) {
    lookup_seconds_.observe(latency);
}

void registry::key_evaluation(bool kept) {
    (kept ? evaluations_kept_ : evaluations_made_).fetch_add(1, relaxed);
}

void registry::connection_opened() {
    open_connections_.fetch_add(1, relaxed);
}

void registry::connection_closed() {
    open_connections_.fetch_sub(1, relaxed);
}

void registry::rcpt_refused(std::string_view reason) {
    count(rcpt_refusals_, rcpt_refusal_names, reason);
}

void registry::relay_error(std::string_view kind) {
    count(relay_errors_, relay_error_names, kind);
}

void registry::config_loaded(bool succeeded, std::chrono::system_clock::time_point when) {
    (succeeded ? reloads_succeeded_ : reloads_failed_).fetch_add(1, relaxed);
    last_reload_succeeded_.store(succeeded, relaxed);
    if (succeeded) {
        last_success_seconds_.store(
            std::chrono::duration_cast<std::chrono::seconds>(when.time_since_epoch()).count(),
            relaxed);
    }
}

void registry::set_version(std::string_view version) {
    std::lock_guard lock(version_mutex_);
    version_ = version;
}

std::string registry::render() const {
    std::string out;
    header(out, "mailseal_build_info", "gauge", "Always 1; the version in a label.");
    {
        std::lock_guard lock(version_mutex_);
        out += "mailseal_build_info{version=\"" + version_ + "\"} 1\n";
    }
    header(out, "mailseal_deliveries_total", "counter",
           "Recipients by what was stored for them (sealed, passthrough, plain) or why nothing "
           "was.");
    for (std::size_t i = 0; i < decision_names.size(); ++i) {
        out += "mailseal_deliveries_total{decision=\"" + std::string(decision_names[i]) + "\"} " +
               std::to_string(decisions_[i].load(relaxed)) + "\n";
    }
    header(out, "mailseal_key_lookups_total", "counter",
           "Key record lookups (SMIMEA, OPENPGPKEY) by format and DNSSEC outcome.");
    {
        std::lock_guard lock(lookups_mutex_);
        for (const auto& [format, counts] : lookups_) {
            for (std::size_t i = 0; i < outcome_names.size(); ++i) {
                out += "mailseal_key_lookups_total{format=\"" + format + "\",outcome=\"" +
                       std::string(outcome_names[i]) + "\"} " + std::to_string(counts[i]) + "\n";
            }
        }
    }
    header(out, "mailseal_key_evaluations_total", "counter",
           "Verdicts on a recipient's keys (one per record type looked up): kept from an earlier "
           "message with the same records and files, or made afresh.");
    out += "mailseal_key_evaluations_total{source=\"cache\"} " +
           std::to_string(evaluations_kept_.load(relaxed)) + "\n";
    out += "mailseal_key_evaluations_total{source=\"evaluated\"} " +
           std::to_string(evaluations_made_.load(relaxed)) + "\n";
    header(out, "mailseal_replies_total", "counter", "Per-recipient replies after DATA by class.");
    static constexpr std::array<std::string_view, 3> classes{"2xx", "4xx", "5xx"};
    for (std::size_t i = 0; i < classes.size(); ++i) {
        out += "mailseal_replies_total{class=\"" + std::string(classes[i]) + "\"} " +
               std::to_string(replies_[i].load(relaxed)) + "\n";
    }
    header(out, "mailseal_sealed_bytes_total", "counter",
           "Message bytes (as received) stored sealed, summed over recipients.");
    out += "mailseal_sealed_bytes_total " + std::to_string(sealed_bytes_.load(relaxed)) + "\n";
    header(out, "mailseal_rcpt_refusals_total", "counter",
           "RCPT commands refused, by reason: the session's checks (sequence, syntax, parameter, "
           "smtputf8-required, too-many-recipients) and the mailbox's (unknown-recipient, "
           "mailbox-error).");
    render_counters(out, "mailseal_rcpt_refusals_total", "reason", rcpt_refusals_,
                    rcpt_refusal_names);
    header(out, "mailseal_relay_errors_total", "counter",
           "Copies for the next hop that failed, by kind: unavailable, lost, protocol, "
           "refused-temporary, refused-permanent.");
    render_counters(out, "mailseal_relay_errors_total", "kind", relay_errors_, relay_error_names);
    header(out, "mailseal_config_loads_total", "counter",
           "Configuration loads (start-up, SIGHUP) by result.");
    out += "mailseal_config_loads_total{result=\"success\"} " +
           std::to_string(reloads_succeeded_.load(relaxed)) + "\n";
    out += "mailseal_config_loads_total{result=\"failure\"} " +
           std::to_string(reloads_failed_.load(relaxed)) + "\n";
    header(out, "mailseal_config_last_reload_successful", "gauge",
           "1 when the last configuration load succeeded, 0 when it was refused (the previous "
           "configuration stays in force).");
    out += "mailseal_config_last_reload_successful " +
           std::string(last_reload_succeeded_.load(relaxed) ? "1" : "0") + "\n";
    header(out, "mailseal_config_last_reload_success_timestamp_seconds", "gauge",
           "When the configuration in force was loaded.");
    out += "mailseal_config_last_reload_success_timestamp_seconds " +
           std::to_string(last_success_seconds_.load(relaxed)) + "\n";
    header(out, "mailseal_open_connections", "gauge", "LMTP connections open now.");
    out += "mailseal_open_connections " + std::to_string(open_connections_.load(relaxed)) + "\n";
    delivery_seconds_.render(out, "mailseal_delivery_seconds",
                             "Time from DATA to each recipient's reply.");
    lookup_seconds_.render(out, "mailseal_key_lookup_seconds",
                           "Time one recipient's key discovery took (every format's lookup, "
                           "in parallel, and the local store).");
    return out;
}

registry& global() {
    static registry r;
    return r;
}

} // namespace mailseal::metrics
