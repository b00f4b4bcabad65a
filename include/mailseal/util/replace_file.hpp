// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Replacing a small file whole, so that readers and crashes see the old text or the new one:
/// written beside it under a new name (NAME.XXXXXX), fsync'd, renamed over it, the directory
/// fsync'd. A reader globbing *.prom or reading NAME never sees the temporary file.

#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

#include <mailseal/util/errno_text.hpp>
#include <mailseal/util/unique_fd.hpp>

namespace mailseal::util {

/// nullopt, or why the file could not be replaced (then it is as it was).
inline std::optional<std::string> replace_file(const std::filesystem::path& file,
                                               std::string_view text, mode_t mode = 0644) {
    auto directory = file.parent_path().empty() ? std::filesystem::path(".") : file.parent_path();
    // A name of its own (O_EXCL, never a symlink's target): two writers never share one.
    std::string temporary = file.string() + ".XXXXXX";
    unique_fd out(::mkostemp(temporary.data(), O_CLOEXEC));
    if (!out) {
        return "cannot create " + temporary + ": " + errno_text(errno);
    }
    auto failed = [&](const std::string& step) {
        auto why = errno_text(errno);
        ::unlink(temporary.c_str());
        return step + " " + temporary + ": " + why;
    };
    std::size_t written = 0;
    while (written < text.size()) {
        ssize_t n = ::write(out.get(), text.data() + written, text.size() - written);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return failed("cannot write");
        }
        written += static_cast<std::size_t>(n);
    }
    if (::fchmod(out.get(), mode) != 0 || ::fsync(out.get()) != 0 || out.close() != 0) {
        return failed("cannot write");
    }
    if (::rename(temporary.c_str(), file.c_str()) != 0) {
        return failed("cannot rename");
    }
    unique_fd dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir || ::fsync(dir.get()) != 0) {
        return "cannot sync " + directory.string() + ": " + errno_text(errno);
    }
    return std::nullopt;
}

} // namespace mailseal::util
