// SPDX-License-Identifier: Apache-2.0
#pragma once

/// OpenPGP's sealing options ([seal] openpgp_cipher), read by the configuration and used by the
/// PGP/MIME encoder. Plain values with no dependencies: the configuration includes this.

#include <string_view>

namespace mailseal::seal::openpgp {

/// The symmetric cipher of the encrypted data packet (SEIPD v1, RFC 4880 §5.13). AES-256 is
/// what GnuPG, Sequoia, PGPainless, go-crypto and Thunderbird all decrypt.
enum class symmetric_cipher { aes_256, aes_192, aes_128 };

constexpr std::string_view to_string(symmetric_cipher c) {
    switch (c) {
    case symmetric_cipher::aes_256:
        return "aes-256";
    case symmetric_cipher::aes_192:
        return "aes-192";
    case symmetric_cipher::aes_128:
        return "aes-128";
    }
    return "unknown";
}

struct options {
    symmetric_cipher cipher = symmetric_cipher::aes_256;

    bool operator==(const options&) const = default;
};

} // namespace mailseal::seal::openpgp
