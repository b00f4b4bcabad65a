// SPDX-License-Identifier: Apache-2.0
// DNS message and RDATA parsing through ldns (NLnet Labs, the library behind drill and
// ldns-signzone), rather than a wire parser of our own: names with compression pointers and
// RRSIG fields are exactly what it has been handling for years.

#include <algorithm>
#include <cstdlib>
#include <memory>

#include <mailseal/dns/lookup.hpp>

// Last: ldns's common.h may define `bool` as a macro for C, which breaks C++ headers after it.
#include <ldns/ldns.h>

namespace mailseal::dns {
namespace {

struct packet_deleter {
    void operator()(ldns_pkt* p) const noexcept { ldns_pkt_free(p); }
};
struct rdf_deleter {
    void operator()(ldns_rdf* p) const noexcept { ldns_rdf_deep_free(p); }
};
using packet_ptr = std::unique_ptr<ldns_pkt, packet_deleter>;
using rdf_ptr = std::unique_ptr<ldns_rdf, rdf_deleter>;

std::chrono::system_clock::time_point signature_time(const ldns_rdf* field) {
    // RRSIG times are unsigned 32-bit seconds; ldns_rdf2native_int32 keeps them unsigned.
    return std::chrono::system_clock::time_point(
        std::chrono::seconds(static_cast<std::int64_t>(ldns_rdf2native_int32(field))));
}

} // namespace

std::optional<signature_window> signatures_in(std::span<const std::uint8_t> message,
                                              std::uint16_t rr_type) {
    ldns_pkt* raw = nullptr;
    if (message.empty() || ldns_wire2pkt(&raw, message.data(), message.size()) != LDNS_STATUS_OK) {
        return std::nullopt;
    }
    packet_ptr packet(raw);
    const ldns_rr_list* answer = ldns_pkt_answer(packet.get());
    std::optional<signature_window> window;
    for (std::size_t i = 0; answer != nullptr && i < ldns_rr_list_rr_count(answer); ++i) {
        const ldns_rr* rr = ldns_rr_list_rr(answer, i);
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_RRSIG || ldns_rr_rd_count(rr) < 9) {
            continue;
        }
        const ldns_rdf* covered = ldns_rr_rrsig_typecovered(rr);
        if (covered == nullptr || ldns_rdf2native_int16(covered) != rr_type) {
            continue;
        }
        auto inception = signature_time(ldns_rr_rrsig_inception(rr));
        auto expiration = signature_time(ldns_rr_rrsig_expiration(rr));
        auto ttl = ldns_rdf2native_int32(ldns_rr_rrsig_origttl(rr));
        if (!window) {
            window = signature_window{inception, expiration, ttl};
            continue;
        }
        window->inception = std::max(window->inception, inception);
        window->expiration = std::min(window->expiration, expiration);
        window->original_ttl = std::max(window->original_ttl, ttl);
    }
    return window;
}

std::optional<mx_record> parse_mx(std::span<const std::uint8_t> rdata) {
    if (rdata.size() < 3) {
        return std::nullopt;
    }
    mx_record mx;
    mx.preference = static_cast<std::uint16_t>(rdata[0] << 8 | rdata[1]);
    ldns_rdf* raw = nullptr;
    std::size_t position = 2;
    if (ldns_wire2dname(&raw, rdata.data(), rdata.size(), &position) != LDNS_STATUS_OK) {
        return std::nullopt;
    }
    rdf_ptr name(raw);
    // RDATA names reach us uncompressed; a pointer would have led outside the RDATA.
    if (position != rdata.size()) {
        return std::nullopt;
    }
    ldns_dname2canonical(name.get());
    std::unique_ptr<char, decltype(&std::free)> text(ldns_rdf2str(name.get()), &std::free);
    if (!text) {
        return std::nullopt;
    }
    mx.exchange = text.get();
    if (!mx.exchange.empty() && mx.exchange.back() == '.') {
        mx.exchange.pop_back();
    }
    return mx;
}

} // namespace mailseal::dns
