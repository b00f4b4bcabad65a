// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The input layout of the fuzz targets that evaluate the RDATA of a DNS answer, as the
/// resolver hands it to a key format (dns::lookup_result):
///
///     byte 0     options, each target's own bits
///     records    each one RDLENGTH (two octets, most significant first) and that many octets
///                of RDATA, as on the wire; the last one takes what is left if it is shorter
///
/// At most max_records are read: an answer with more adds nothing a fuzzer could find.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <mailseal/dns/lookup.hpp>

namespace mailseal::fuzz {

struct record_input {
    static constexpr std::size_t max_records = 8;

    std::uint8_t options = 0;
    dns::lookup_result lookup;

    /// A secure answer (dns::outcome::secure_records) of `rr_type` for `owner`.
    static record_input parse(const std::uint8_t* data, std::size_t size, std::uint16_t rr_type,
                              std::string owner) {
        record_input out;
        out.lookup.result = dns::outcome::secure_records;
        out.lookup.owner = std::move(owner);
        out.lookup.rr_type = rr_type;
        out.lookup.ttl = 3600;
        if (size == 0) {
            return out;
        }
        out.options = data[0];
        std::size_t pos = 1;
        while (pos + 2 <= size && out.lookup.rdata.size() < max_records) {
            std::size_t length = std::size_t{data[pos]} << 8 | data[pos + 1];
            pos += 2;
            length = std::min(length, size - pos);
            out.lookup.rdata.emplace_back(data + pos, data + pos + length);
            pos += length;
        }
        return out;
    }
};

} // namespace mailseal::fuzz
