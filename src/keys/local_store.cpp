#include <algorithm>
#include <system_error>

#include <mailseal/keys/local_store.hpp>
#include <mailseal/util/ascii.hpp>

#include "inspect.hpp"

namespace mailseal::keys {

namespace {

namespace fs = std::filesystem;

/// A store file is a handful of certificates; anything larger is a mistake, not worth reading
/// on every delivery.
constexpr std::uintmax_t max_file_size = 1u << 20;

/// The same rule as for Maildir paths (delivery/mailbox.hpp): a name that could leave the store
/// directory is not looked up.
bool safe_component(std::string_view name) {
    return !name.empty() && name != "." && name != ".." &&
           name.find_first_of(std::string_view("/\0", 2)) == std::string_view::npos;
}

candidate_report problem(const fs::path& where, std::string why) {
    candidate_report r;
    r.source = "local " + where.string();
    r.why = std::move(why);
    return r;
}

} // namespace

local_listing read_certificate_file(const fs::path& file) {
    return detail::read_pem_file(file, max_file_size);
}

local_listing read_local_store(const fs::path& store, std::string_view user,
                               std::string_view domain) {
    local_listing out;
    if (store.empty()) {
        return out;
    }
    if (!safe_component(user) || !safe_component(domain)) {
        out.problems.push_back(problem(store, "\"" + std::string(user) + "@" + std::string(domain) +
                                                  "\" cannot name a store directory"));
        return out;
    }
    fs::path dir = store / util::ascii_lower(domain) / std::string(user);

    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec == std::errc::no_such_file_or_directory) {
        return out;
    }
    if (ec) {
        out.problems.push_back(problem(dir, "cannot list: " + ec.message()));
        return out;
    }
    std::vector<fs::path> files;
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
        auto name = it->path().filename().string();
        if (name.starts_with(".") || it->path().extension() != ".pem") {
            continue;
        }
        std::error_code type_ec;
        if (it->is_regular_file(type_ec)) {
            files.push_back(it->path());
        }
    }
    if (ec) {
        out.problems.push_back(problem(dir, "cannot list: " + ec.message()));
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
        auto listing = read_certificate_file(file);
        std::move(listing.certificates.begin(), listing.certificates.end(),
                  std::back_inserter(out.certificates));
        std::move(listing.problems.begin(), listing.problems.end(),
                  std::back_inserter(out.problems));
    }
    return out;
}

} // namespace mailseal::keys
