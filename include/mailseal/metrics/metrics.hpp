// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Process-wide counters for the Prometheus text endpoint ([metrics] listen): what happened to
/// each recipient, how key lookups ended, replies by class, bytes sealed, latencies, open
/// connections. Never message content.
///
/// Updated from any thread with relaxed atomics (a counter needs no ordering with anything
/// else); render() reads a snapshot that may mix updates in flight, as every scrape does.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace mailseal::metrics {

/// A cumulative histogram with fixed upper bounds in seconds (Prometheus `le` buckets).
class histogram {
public:
    static constexpr std::array<double, 12> bounds{0.005, 0.01, 0.025, 0.05, 0.1,  0.25,
                                                   0.5,   1.0,  2.5,   5.0,  10.0, 30.0};
    void observe(std::chrono::steady_clock::duration d);
    void render(std::string& out, std::string_view name, std::string_view help) const;

private:
    std::array<std::atomic<std::uint64_t>, bounds.size()> buckets_{};
    std::atomic<std::uint64_t> count_{0};
    /// Microseconds, so the sum stays an integer atomic and renders exactly.
    std::atomic<std::uint64_t> sum_us_{0};
};

/// The decisions of seal::action plus the outcomes without one, as delivery logs them.
inline constexpr std::array<std::string_view, 10> decision_names{
    "sealed", "passthrough",   "plain",     "deferred", "rejected",
    "bogus",  "lookup-failed", "unsettled", "failed",   "abandoned"};
/// Why a RCPT was refused: the session's own checks, then the mailbox's.
inline constexpr std::array<std::string_view, 7> rcpt_refusal_names{
    "sequence",          "syntax",       "parameter", "smtputf8-required", "too-many-recipients",
    "unknown-recipient", "mailbox-error"};

/// How a copy for the next hop ([store] kind = "lmtp") failed: it could not be reached, the
/// connection broke, it answered out of turn, or it refused the copy.
inline constexpr std::array<std::string_view, 5> relay_error_names{
    "unavailable", "lost", "protocol", "refused-temporary", "refused-permanent"};

/// dns::outcome's words.
inline constexpr std::array<std::string_view, 5> outcome_names{"secure", "secure-absent",
                                                               "insecure", "bogus", "failure"};

class registry {
public:
    /// One recipient's delivery ended: its decision (a decision_names word), its reply code
    /// (0 for an abandoned delivery), the bytes sealed for it, the transaction's age.
    void delivery(std::string_view decision, int reply_code, std::uint64_t sealed_bytes,
                  std::chrono::steady_clock::duration latency);
    /// A format's series exist from the start, at zero ("smime", "openpgp").
    void declare_key_format(std::string_view format);
    /// One format's key record lookup ended (an outcome_names word).
    void key_lookup(std::string_view format, std::string_view outcome);
    /// One recipient's key discovery ended: every format's lookup and the local store.
    void key_discovery(std::chrono::steady_clock::duration latency);
    /// One format's verdict on a recipient's keys was kept from an earlier message, or made.
    void key_evaluation(bool kept);
    void connection_opened();
    void connection_closed();
    /// A RCPT was refused (a rcpt_refusal_names word).
    void rcpt_refused(std::string_view reason);
    /// A copy for the next hop failed (a relay_error_names word).
    void relay_error(std::string_view kind);
    /// A configuration reload (SIGHUP) ended; a success also counts as the configuration's
    /// load time. set at start-up too, as the first load.
    void config_loaded(bool succeeded, std::chrono::system_clock::time_point when);
    /// The version mailseal_build_info reports.
    void set_version(std::string_view version);

    /// The Prometheus text exposition format, version 0.0.4.
    std::string render() const;

private:
    std::array<std::atomic<std::uint64_t>, decision_names.size()> decisions_{};
    /// Lookups by format and outcome; formats are few and known at start, so a map under a
    /// mutex costs nothing worth an atomic per series.
    mutable std::mutex lookups_mutex_;
    std::map<std::string, std::array<std::uint64_t, outcome_names.size()>, std::less<>> lookups_;
    std::array<std::atomic<std::uint64_t>, 3> replies_{}; ///< 2xx, 4xx, 5xx
    std::atomic<std::uint64_t> sealed_bytes_{0};
    std::atomic<std::uint64_t> evaluations_kept_{0};
    std::atomic<std::uint64_t> evaluations_made_{0};
    std::atomic<std::int64_t> open_connections_{0};
    std::array<std::atomic<std::uint64_t>, rcpt_refusal_names.size()> rcpt_refusals_{};
    std::array<std::atomic<std::uint64_t>, relay_error_names.size()> relay_errors_{};
    std::atomic<std::uint64_t> reloads_succeeded_{0};
    std::atomic<std::uint64_t> reloads_failed_{0};
    std::atomic<bool> last_reload_succeeded_{true};
    std::atomic<std::int64_t> last_success_seconds_{0};
    mutable std::mutex version_mutex_;
    std::string version_;
    histogram delivery_seconds_;
    histogram lookup_seconds_;
};

/// The process's registry.
registry& global();

} // namespace mailseal::metrics
