// SPDX-License-Identifier: Apache-2.0
#include <mailseal/monitor/verdict.hpp>

namespace mailseal::monitor {

std::string_view to_string(severity s) {
    switch (s) {
    case ok:
        return "OK";
    case warning:
        return "WARNING";
    case critical:
        return "CRITICAL";
    case unknown:
        return "UNKNOWN";
    }
    return "UNKNOWN";
}

} // namespace mailseal::monitor
