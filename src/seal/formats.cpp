// SPDX-License-Identifier: Apache-2.0
#include <cerrno>
#include <cstdlib>
#include <fstream>

#include <mailseal/seal/formats.hpp>
#include <mailseal/seal/openpgp/openpgp.hpp>
#include <mailseal/seal/smime/smime.hpp>
#include <mailseal/util/errno_text.hpp>

namespace mailseal::seal {

std::variant<format_set, std::string> format_set::load(const config::config& cfg) {
    using factory =
        std::variant<std::shared_ptr<const format>, std::string> (*)(const config::config&);
    static constexpr std::pair<const char*, factory> registered[] = {
        {"keys", &smime::make_format},
        {"seal", &openpgp::make_format},
    };
    format_set set;
    for (const auto& [section, make] : registered) {
        auto made = make(cfg);
        if (auto* problem = std::get_if<std::string>(&made)) {
            return std::string(section) + ": " + *problem;
        }
        set.formats_.push_back(std::move(std::get<std::shared_ptr<const format>>(made)));
    }
    return set;
}

std::shared_ptr<const format> format_set::get(config::seal_format id) const {
    for (const auto& f : formats_) {
        if (f->id() == id) {
            return f;
        }
    }
    // config::seal_format names only registered formats; a gap is a build mistake.
    std::abort();
}

std::variant<std::shared_ptr<const format>, std::string>
format_set::for_file(const std::filesystem::path& file) const {
    for (const auto& f : formats_) {
        if (f->recognises(file)) {
            return f;
        }
    }
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec)) {
        return std::string("a directory, not a key file");
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return "cannot open: " + util::errno_text(errno);
    }
    return std::string("neither an X.509 certificate (PEM or DER) nor an OpenPGP public key "
                       "(armoured or binary)");
}

} // namespace mailseal::seal
