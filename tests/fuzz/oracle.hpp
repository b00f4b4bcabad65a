// SPDX-License-Identifier: Apache-2.0
#pragma once

/// How a fuzz target's oracle fails a run: a line naming the target and the broken rule (the
/// form scripts/fuzz picks out of the log), then abort(), which libFuzzer reports as a crash
/// and saves the input of.

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace mailseal::fuzz {

inline void require(bool ok, const char* what) {
    if (!ok) {
        // The binary's name is the target's (glibc's program_invocation_short_name).
        std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, what);
        std::abort();
    }
}

} // namespace mailseal::fuzz
