// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The sealing formats mailseal knows, made from one configuration. This is the one place that
/// lists them: a new format is registered in formats.cpp.

#include <filesystem>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <mailseal/config/config.hpp>
#include <mailseal/seal/format.hpp>

namespace mailseal::seal {

class format_set {
public:
    /// Makes every format from `cfg`, reading what they need (CA files): blocking, at start-up
    /// and at each reload. The error names the setting.
    static std::variant<format_set, std::string> load(const config::config& cfg);

    /// The format for an identifier. Every identifier config::seal_format has is registered.
    std::shared_ptr<const format> get(config::seal_format id) const;
    const std::vector<std::shared_ptr<const format>>& all() const { return formats_; }
    /// The format whose keys a file given on the command line holds, by its content, or why
    /// there is none: the file cannot be read, or no format reads what it holds.
    std::variant<std::shared_ptr<const format>, std::string>
    for_file(const std::filesystem::path& file) const;

private:
    std::vector<std::shared_ptr<const format>> formats_;
};

} // namespace mailseal::seal
