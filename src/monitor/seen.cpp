// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include <mailseal/monitor/seen.hpp>
#include <mailseal/util/errno_text.hpp>
#include <mailseal/util/replace_file.hpp>

namespace mailseal::monitor {

std::variant<seen_records, std::string> seen_records::load(const std::filesystem::path& file) {
    seen_records state;
    std::ifstream in(file);
    if (!in) {
        if (errno == ENOENT) {
            return state;
        }
        return file.string() + ": " + util::errno_text(errno);
    }
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        std::istringstream fields(line);
        long long seconds = 0;
        std::string owner;
        std::string presentation;
        // Up to 2^33 seconds (the year 2242): any later is not a time this file could hold.
        if (!(fields >> seconds >> owner) || !std::getline(fields >> std::ws, presentation) ||
            presentation.empty() || seconds < 0 || seconds > (1LL << 33)) {
            return file.string() + ":" + std::to_string(number) +
                   ": not \"<seconds> <owner> <record>\"";
        }
        state.seen_[owner][presentation] = time_point(std::chrono::seconds(seconds));
    }
    if (in.bad()) {
        return file.string() + ": " + util::errno_text(errno);
    }
    return state;
}

std::map<std::string, seen_records::time_point>
seen_records::observe(const std::string& owner, const std::vector<std::string>& records,
                      time_point now) {
    auto& known = seen_[owner];
    std::map<std::string, time_point> current;
    for (const auto& record : records) {
        auto it = known.find(record);
        // A sighting in the future (a clock set back, an edited file) counts from now.
        current[record] = it == known.end() ? now : std::min(it->second, now);
    }
    if (current != known) {
        changed_ = true;
        known = current;
    }
    if (known.empty()) {
        seen_.erase(owner);
    }
    return current;
}

std::optional<std::string> seen_records::save(const std::filesystem::path& file) const {
    std::string text;
    for (const auto& [owner, records] : seen_) {
        for (const auto& [presentation, first] : records) {
            text += std::to_string(
                        std::chrono::duration_cast<std::chrono::seconds>(first.time_since_epoch())
                            .count()) +
                    " " + owner + " " + presentation + "\n";
        }
    }
    return util::replace_file(file, text);
}

} // namespace mailseal::monitor
