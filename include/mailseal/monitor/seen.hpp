// SPDX-License-Identifier: Apache-2.0
#pragma once

/// When each published DNS record was first seen by a check on this host: DNS itself says
/// nothing of how long a record has been visible, and a key may only go live once every cache
/// holding the RRset without it has expired that copy (twice the TTL after publication).
///
/// The state is a text file, one record per line: "<seconds since 1970> <owner> <RDATA in
/// presentation form>". It is replaced whole (written beside, fsync'd, renamed, directory
/// fsync'd), so a crash leaves the old or the new state.

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace mailseal::monitor {

class seen_records {
public:
    using time_point = std::chrono::system_clock::time_point;

    /// The file's records; an absent file is an empty state. The error names the file and the
    /// line that does not parse.
    static std::variant<seen_records, std::string> load(const std::filesystem::path& file);

    /// Records that `owner` publishes `records` (presentation forms) as of `now`: a record not
    /// seen before is first seen now; records of `owner` no longer published are forgotten (a
    /// record published again must be waited for again). Returns the first-seen time of each
    /// of `records`.
    std::map<std::string, time_point>
    observe(const std::string& owner, const std::vector<std::string>& records, time_point now);

    /// Replaces the file; nullopt, or why it could not be written.
    std::optional<std::string> save(const std::filesystem::path& file) const;

    bool changed() const { return changed_; }

private:
    /// owner -> presentation -> first seen.
    std::map<std::string, std::map<std::string, time_point>> seen_;
    bool changed_ = false;
};

} // namespace mailseal::monitor
