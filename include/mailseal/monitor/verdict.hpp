// SPDX-License-Identifier: Apache-2.0
#pragma once

/// What a monitoring check concludes, in the terms Nagios and its successors read: one
/// severity per checked name (its exit status), with the findings that led there.

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailseal::monitor {

/// Nagios plugin statuses, in rising order of concern; also the exit statuses.
enum severity : int { ok = 0, warning = 1, critical = 2, unknown = 3 };

/// "OK", "WARNING", "CRITICAL", "UNKNOWN".
std::string_view to_string(severity);

struct finding {
    severity level = ok;
    std::string text;
};

/// The result for one checked name: a TLSA RRset ("tlsa", "_25._tcp.mx.example.org"), a
/// domain's MX RRset ("mx", "example.org") or a user's keys ("smimea", "openpgpkey", "keys"
/// with the address).
struct verdict {
    std::string kind;
    std::string name;
    severity level = ok;
    /// What was found, in order; the line a human reads joins them.
    std::string summary;
    std::vector<finding> findings;
    /// Zone-file lines to publish, and published ones to remove.
    std::vector<std::string> publish;
    std::vector<std::string> remove;
    /// Days until the first certificate or key in use expires, as of the judged time.
    std::optional<double> days_to_expiry;

    void raise(severity s, std::string text) {
        level = std::max(level, s);
        findings.push_back({s, std::move(text)});
    }
    void note(std::string text) { findings.push_back({ok, std::move(text)}); }
};

} // namespace mailseal::monitor
