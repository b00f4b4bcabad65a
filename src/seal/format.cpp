// SPDX-License-Identifier: Apache-2.0
#include <ctime>

#include <mailseal/seal/format.hpp>

namespace mailseal::seal {

std::string iso_time(std::chrono::system_clock::time_point t) {
    std::time_t seconds = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    if (::gmtime_r(&seconds, &tm) == nullptr) {
        return {};
    }
    char buf[32];
    std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return std::string(buf, n);
}

void append_finding(std::string& text, std::string_view more) {
    if (more.empty()) {
        return;
    }
    if (!text.empty()) {
        text += "; ";
    }
    text += more;
}

void note_change(evaluation& ev, std::chrono::system_clock::time_point edge,
                 std::chrono::system_clock::time_point now) {
    if (edge > now && (!ev.changes_at || edge < *ev.changes_at)) {
        ev.changes_at = edge;
    }
}

std::string refusal_decision(std::string_view rr_name, dns::outcome outcome) {
    std::string name(rr_name);
    if (outcome == dns::outcome::bogus) {
        return name + " answer bogus (DNSSEC validation failed): no keys, and no fallback to "
                      "the local store";
    }
    return name + " lookup failed: no keys, and no fallback to the local store";
}

} // namespace mailseal::seal
