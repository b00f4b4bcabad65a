// SPDX-License-Identifier: Apache-2.0
#pragma once

/// Encrypted content built by hand for the body checks' tests: OpenPGP packets (RFC 9580
/// §4.2) whose bodies are only long enough for the checks, armour, and PGP/MIME bodies.

#include <cstdint>
#include <initializer_list>
#include <string>

#include <openssl/evp.h>

namespace mailseal::seal::test::samples {

inline std::string bytes(std::initializer_list<int> octets) {
    std::string out;
    for (int o : octets) {
        out += static_cast<char>(o);
    }
    return out;
}

inline std::string base64(const std::string& data, std::size_t line = 76) {
    std::string encoded(4 * ((data.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                            reinterpret_cast<const unsigned char*>(data.data()),
                            static_cast<int>(data.size()));
    encoded.resize(static_cast<std::size_t>(n));
    std::string out;
    for (std::size_t i = 0; i < encoded.size(); i += line) {
        out += encoded.substr(i, line) + "\r\n";
    }
    return out;
}

/// `n` octets that look random (xorshift64), the same each run: encrypted data stand-ins.
inline std::string random_bytes(std::size_t n, std::uint64_t seed = 88172645463325252ull) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out += static_cast<char>(seed >> 24);
    }
    return out;
}

// New-format packets: 0xc1 a PKESK, 0xc3 an SKESK, 0xd2 an SEIPD, 0xcb literal data.
inline const std::string pkesk =
    bytes({0xc1, 0x0c, 0x03, 1, 2, 3, 4, 5, 6, 7, 8, 0x01, 0x00, 0x08});
inline const std::string skesk = bytes({0xc3, 0x04, 0x04, 0x09, 0x03, 0x08});
inline const std::string seipd = bytes({0xd2, 0x05, 0x01, 0xaa, 0xbb, 0xcc, 0xdd});
inline const std::string literal = bytes({0xcb, 0x08, 'b', 0, 0, 0, 0, 0, 'h', 'i'});

inline const std::string armoured_message =
    "-----BEGIN PGP MESSAGE-----\r\nVersion: GnuPG v2\r\nComment: x\r\n\r\n" +
    base64(pkesk + seipd, 64) + "=njUN\r\n-----END PGP MESSAGE-----\r\n";

/// A body PGP/MIME clients write, around `data` (part 2's content).
inline std::string pgp_mime_body(const std::string& data,
                                 const std::string& preamble = "This is an OpenPGP/MIME encrypted "
                                                               "message (RFC 4880 and 3156)\r\n") {
    return preamble +
           "--b1\r\nContent-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME "
           "version identification\r\n\r\nVersion: 1\r\n\r\n--b1\r\nContent-Type: "
           "application/octet-stream; name=\"encrypted.asc\"\r\nContent-Description: OpenPGP "
           "encrypted message\r\nContent-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n" +
           data + "\r\n--b1--\r\n";
}

} // namespace mailseal::seal::test::samples
