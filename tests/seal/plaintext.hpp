// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Plaintext for encoder tests: numbered CRLF lines with a non-ASCII character, cut to size.

#include <string>

namespace mailseal::seal::test {

inline std::string plaintext_of(std::size_t size) {
    std::string out;
    for (std::size_t i = 0; out.size() < size; ++i) {
        out += "line " + std::to_string(i) + " \xc3\xa9 with bytes\r\n";
    }
    out.resize(size);
    return out;
}

} // namespace mailseal::seal::test
