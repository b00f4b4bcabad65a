// SPDX-License-Identifier: Apache-2.0
#pragma once

/// errno values as the words strerror(3) gives them, for error texts and log fields.

#include <string>
#include <system_error>

namespace mailseal::util {

inline std::string errno_text(int err) {
    return std::error_code(err, std::system_category()).message();
}

} // namespace mailseal::util
