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
    out += base + "_sum " + number(static_cast<double>(sum_us_.load(relaxed)) / 1e6) + "\n";
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

std::string registry::render() const {
    std::string out;
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
